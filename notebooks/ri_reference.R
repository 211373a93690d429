# R half of notebooks/ri_reference.py (see notebooks/README-ri.md). Run by the Python script as
#
#   LC_ALL=C Rscript --vanilla notebooks/ri_reference.R TASK DATA ASSIGN OUT MODE [NRESAMPLE SEED]
#
# TASK   "check": the observed assignment and every row of ASSIGN; "coin": that, plus coin.
# DATA   orgnr,z,stratum,cluster,y,b,m with y, b, m as C99 hex floats ("NA": attrited firm).
# ASSIGN one re-drawn assignment per row, 0/1 per firm in DATA's row order (no header).
# OUT    JSON; every number as a hex float string (sprintf("%a")), so nothing is rounded.
# MODE   "hc2" (lm_robust se_type = "HC2") or "clustered" (se_type = "CR2", clusters = cluster).
#
# The differences in means are computed here by their own code (estimatr's difference_in_means
# refuses a block with one arm, which the definition leaves out instead).
suppressPackageStartupMessages({
  library(estimatr)
  library(sandwich)
  library(clubSandwich)
  library(coin)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
task <- args[1]; data_f <- args[2]; assign_f <- args[3]; out_f <- args[4]; mode <- args[5]
clustered <- mode == "clustered"

d <- read.csv(data_f, colClasses = "character")
hx <- function(v) ifelse(v == "NA", NA_real_, suppressWarnings(as.numeric(v)))
d$y <- hx(d$y); d$b <- hx(d$b); d$m <- hx(d$m); d$z <- as.integer(d$z)
obs <- !is.na(d$y)
h <- function(x) sprintf("%a", x)

# blocked difference in means: per stratum with both arms observed, (weighted) mean of treated
# minus control; stratum weight = observed firms (w NULL) or sum of w over observed firms
dim_r <- function(y, z, s, w = NULL) {
  num <- 0; den <- 0
  for (j in sort(unique(s))) {
    i <- s == j
    zt <- z[i] == 1
    if (!any(zt) || !any(!zt)) next
    if (is.null(w)) {
      tau <- mean(y[i][zt]) - mean(y[i][!zt]); wj <- sum(i)
    } else {
      tau <- weighted.mean(y[i][zt], w[i][zt]) - weighted.mean(y[i][!zt], w[i][!zt]); wj <- sum(w[i])
    }
    num <- num + wj * tau; den <- den + wj
  }
  num / den
}

fit_fe <- function(dd) {
  if (clustered) lm_robust(y ~ z + b, data = dd, fixed_effects = ~stratum, clusters = cluster, se_type = "CR2")
  else lm_robust(y ~ z + b, data = dd, fixed_effects = ~stratum, se_type = "HC2")
}
fit_dummy <- function(dd) {
  if (clustered) lm_robust(y ~ z + b + factor(stratum), data = dd, clusters = cluster, se_type = "CR2")
  else lm_robust(y ~ z + b + factor(stratum), data = dd, se_type = "HC2")
}

do <- d[obs, ]
f1 <- fit_fe(do); f2 <- fit_dummy(do)
ols <- lm(y ~ z + b + factor(stratum), data = do)
observed <- list(
  coef_fe = h(coef(f1)[["z"]]), t_fe = h(coef(f1)[["z"]] / f1$std.error[["z"]]),
  coef_dummy = h(coef(f2)[["z"]]), t_dummy = h(coef(f2)[["z"]] / f2$std.error[["z"]]),
  df_fe = h(f1$df[["z"]]),
  dim = h(dim_r(do$y, do$z, do$stratum)),
  dim_dagsverk = h(dim_r(do$y, do$z, do$stratum, do$m))
)
if (clustered) {
  V <- vcovCR(ols, cluster = do$cluster, type = "CR2")
  observed$t_clubsandwich <- h(coef(ols)[["z"]] / sqrt(V["z", "z"]))
} else {
  V <- vcovHC(ols, type = "HC2")
  observed$t_sandwich <- h(coef(ols)[["z"]] / sqrt(V["z", "z"]))
}

# re-drawn assignments
Z <- as.matrix(read.csv(assign_f, header = FALSE))
n_chk <- nrow(Z)
res <- matrix(NA_real_, n_chk, 4)
for (r in seq_len(n_chk)) {
  dd <- do
  dd$z <- as.integer(Z[r, obs])
  f <- fit_fe(dd)
  res[r, ] <- c(dim_r(dd$y, dd$z, dd$stratum), dim_r(dd$y, dd$z, dd$stratum, dd$m),
                coef(f)[["z"]], coef(f)[["z"]] / f$std.error[["z"]])
}
draws <- list(dim = h(res[, 1]), dim_dagsverk = h(res[, 2]), ancova = h(res[, 3]),
              ancova_t = h(res[, 4]),
              se_type = if (clustered) "lm_robust fixed_effects CR2" else "lm_robust fixed_effects HC2")

out <- list(observed = observed, draws = draws,
            versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                            estimatr = as.character(packageVersion("estimatr")),
                            clubSandwich = as.character(packageVersion("clubSandwich")),
                            sandwich = as.character(packageVersion("sandwich")),
                            coin = as.character(packageVersion("coin"))))

if (task == "coin") {
  B <- as.integer(args[6]); seed <- as.integer(args[7])
  do$zf <- factor(do$z, levels = c(0, 1)); do$sf <- factor(do$stratum)
  set.seed(seed)
  it <- independence_test(y ~ zf | sf, data = do, teststat = "scalar",
                          distribution = approximate(nresample = B))
  p <- pvalue(it)
  ia <- independence_test(y ~ zf | sf, data = do, teststat = "scalar")
  out$coin <- list(
    call = sprintf("set.seed(%d); independence_test(y ~ factor(z, levels = c(0, 1)) | factor(stratum), teststat = \"scalar\", distribution = approximate(nresample = %d))", seed, B),
    p_approx = as.numeric(p), p_conf_int = as.numeric(attr(p, "conf.int")),
    p_asympt = as.numeric(pvalue(ia)),
    statistic = h(as.numeric(statistic(it, type = "standardized"))),
    linear = h(as.numeric(statistic(it, type = "linear"))),
    expectation = h(as.numeric(expectation(it))),
    variance = h(as.numeric(variance(it))),
    linear_dim = length(statistic(it, type = "linear")))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA), out_f)
