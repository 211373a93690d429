# R half of notebooks/estimates_reference.py (estimatr 1.0.0, clubSandwich 0.5.8, sandwich 3.0-2).
#
# Not meant to be run by hand: estimates_reference.py derives the firm-level and panel datasets of
# one case (ANALYSIS.md §2-§3), writes them to a temporary directory with every double as a C99
# hex float (R's decimal parser is not always correctly rounded, hex is exact), and runs
#
#     LC_ALL=C Rscript --vanilla notebooks/estimates_reference.R <tmpdir>
#
# This script reads <tmpdir>/meta.csv (one line per contrast: arm, clustered, use_bmiss, panel)
# and <tmpdir>/firm_<arm>.csv, <tmpdir>/panel_<arm>.csv, runs the reference calls and writes
# <tmpdir>/r_out.csv, one row per (call, coefficient), doubles again as hex floats ("%a").
# LC_ALL=C makes factor levels sort bytewise (the "first stratum in sorted order" of lm_lin).

suppressPackageStartupMessages({
  library(estimatr)
  library(clubSandwich)
  library(sandwich)
})

args <- commandArgs(trailingOnly = TRUE)
wd <- args[1]
NUMERIC <- c("y", "z", "b", "bmiss", "m", "r", "d", "w")

read_hex <- function(path) {
  d <- read.csv(path, colClasses = "character", check.names = FALSE)
  for (v in intersect(names(d), NUMERIC)) d[[v]] <- as.numeric(d[[v]])
  d
}

hx <- function(x) {
  if (is.null(x) || length(x) == 0) return("")
  x <- as.numeric(x)[1]
  if (is.na(x)) return("")
  sprintf("%a", x)
}

OUT <- list()
emit <- function(...) {
  r <- list(...)
  OUT[[length(OUT) + 1]] <<- r
}
FIELDS <- c("arm", "weights", "estimator", "variant", "se_type", "term", "estimate", "std_error",
            "df", "statistic", "p_value", "ci_low", "ci_high", "n_obs", "n_clusters", "design",
            "note")

emit_err <- function(arm, weights, estimator, variant, se_type, e) {
  emit(arm = arm, weights = weights, estimator = estimator, variant = variant, se_type = se_type,
       term = "", note = paste0("ERROR: ", gsub("[\r\n]+", " ", conditionMessage(e))))
}

# one row from an estimatr object (lm_robust / lm_lin / difference_in_means)
emit_estimatr <- function(fit, term, arm, weights, estimator, variant, se_type, note = "") {
  tt <- tidy(fit)
  i <- which(tt$term == term)
  if (length(i) != 1) stop(paste("term", term, "not in fit"))
  nc <- if (!is.null(fit$nclusters)) fit$nclusters else NA
  design <- if (!is.null(fit$design)) fit$design else ""
  emit(arm = arm, weights = weights, estimator = estimator, variant = variant, se_type = se_type,
       term = term, estimate = hx(tt$estimate[i]), std_error = hx(tt$std.error[i]),
       df = hx(tt$df[i]), statistic = hx(tt$statistic[i]), p_value = hx(tt$p.value[i]),
       ci_low = hx(tt$conf.low[i]), ci_high = hx(tt$conf.high[i]), n_obs = hx(fit$nobs),
       n_clusters = hx(nc), design = design, note = note)
}

dropped_names <- function(fit) {
  cf <- coef(fit)
  paste(names(cf)[is.na(cf)], collapse = ";")
}

build <- function(fun, fml, data, extra) {
  cl <- as.call(c(list(as.name(fun), formula = fml, data = quote(data)), extra))
  eval(cl)
}

# The itt_ancova (fixed effects, and factor() dummies) and itt_lin reference calls for one contrast
# and weighting; notebooks/check_unseen.R calls this too.
ref_ancova_lin <- function(fd, arm, wt, se_itt, xs, use_bmiss, first_level, cextra, wextra) {
  # ---------------------------------------------------------------- itt_ancova
  tryCatch({
    f <- build("lm_robust", as.formula(paste("y ~", xs)), fd,
               c(list(fixed_effects = ~stratum, se_type = se_itt), cextra, wextra))
    emit_estimatr(f, "z", arm, wt, "itt_ancova", "fixed_effects", se_itt,
                  note = paste0("dropped=", dropped_names(f)))
  }, error = function(e) emit_err(arm, wt, "itt_ancova", "fixed_effects", se_itt, e))
  tryCatch({
    f <- build("lm_robust", as.formula(paste("y ~", xs, "+ factor(stratum)")), fd,
               c(list(se_type = se_itt), cextra, wextra))
    emit_estimatr(f, "z", arm, wt, "itt_ancova", "factor", se_itt,
                  note = paste0("dropped=", dropped_names(f)))
  }, error = function(e) emit_err(arm, wt, "itt_ancova", "factor", se_itt, e))

  # ---------------------------------------------------------------- itt_lin
  tryCatch({
    cov <- as.formula(paste("~", if (use_bmiss) "b + bmiss" else "b", "+ factor(stratum)"))
    f <- build("lm_lin", y ~ z, fd, c(list(covariates = cov, se_type = se_itt), cextra, wextra))
    cn <- names(coef(f))
    left_out <- !any(cn == paste0("factor(stratum)", first_level, "_c"))
    emit_estimatr(f, "z", arm, wt, "itt_lin", "lm_lin", se_itt,
                  note = paste0("dropped=", dropped_names(f), "|first_level_left_out=",
                                left_out, "|first_level=", first_level,
                                "|ncoef=", length(cn)))
  }, error = function(e) emit_err(arm, wt, "itt_lin", "lm_lin", se_itt, e))
}

# itt_lin with R lm's rule for collinear columns made explicit: lm_lin's columns (Intercept), z,
# centered covariates, their interactions with z, in that order; R's dqrdc2 (qr(), tol 1e-7, what
# lm() uses) keeps the first linearly independent ones, and lm_robust fits those. Same numbers as
# lm_lin when nothing is collinear; when something is, estimatr's own pivoted QR may drop another
# column of the collinear set, which can change the z coefficient (ANALYSIS.md §4: "a column
# that is a linear combination of earlier columns is dropped"). notebooks/check_unseen.R calls
# this too.
ref_lin_lmrule <- function(fd, arm, wt, se_itt, use_bmiss, cextra, wextra) {
  tryCatch({
    mm <- model.matrix(as.formula(paste("~", if (use_bmiss) "b + bmiss" else "b",
                                        "+ factor(stratum)")), data = fd)[, -1, drop = FALSE]
    ww <- if (wt == "dagsverk") fd$m else rep(1, nrow(fd))
    Xc <- sweep(mm, 2, colSums(mm * ww) / sum(ww))
    X <- cbind(1, fd$z, Xc, fd$z * Xc)
    colnames(X) <- c("(Intercept)", "z", paste0(colnames(mm), "_c"),
                     paste0("z:", colnames(mm), "_c"))
    q <- qr(X * sqrt(ww))
    keep <- sort(q$pivot[seq_len(q$rank)])
    if (!(2 %in% keep)) stop("z is collinear")
    Xk <- X[, keep, drop = FALSE]
    colnames(Xk) <- paste0("v", seq_len(ncol(Xk)))
    dl <- data.frame(y = fd$y, cl = fd$cl, m = fd$m)
    dl$Xk <- Xk
    f <- build("lm_robust", y ~ 0 + Xk, dl, c(list(se_type = se_itt), cextra, wextra))
    emit_estimatr(f, "Xkv2", arm, wt, "itt_lin", "lm_lin_lmrule", se_itt,
                  note = paste0("dropped=", paste(colnames(X)[-keep], collapse = ";")))
  }, error = function(e) emit_err(arm, wt, "itt_lin", "lm_lin_lmrule", se_itt, e))
}

# The did_twfe regression with firm and quarter dummies (weighted by w for dagsverk).
did_lm <- function(pd, wt) {
  if (wt == "dagsverk") {
    lm(r ~ d + factor(orgnr) + factor(kvartal), data = pd, weights = w)
  } else {
    lm(r ~ d + factor(orgnr) + factor(kvartal), data = pd)
  }
}

# clubSandwich CR2 of d with Satterthwaite df, inverse_var "default", "TRUE" or "FALSE"; G clusters.
# notebooks/check_unseen.R calls this too.
ref_did_club_cr2 <- function(fit, pd, G, arm, wt, iv) {
  tryCatch({
    V <- if (iv == "default") {
      vcovCR(fit, cluster = pd$cl, type = "CR2")
    } else {
      vcovCR(fit, cluster = pd$cl, type = "CR2", inverse_var = as.logical(iv))
    }
    ct <- coef_test(fit, vcov = V, coefs = "d", test = "Satterthwaite")
    ci <- conf_int(fit, vcov = V, coefs = "d", test = "Satterthwaite", level = 0.95)
    emit(arm = arm, weights = wt, estimator = "did_twfe",
         variant = paste0("clubSandwich_inverse_var=", iv), se_type = "CR2", term = "d",
         estimate = hx(ct$beta[1]), std_error = hx(ct$SE[1]), df = hx(ct$df_Satt[1]),
         statistic = hx(ct$tstat[1]), p_value = hx(ct$p_Satt[1]), ci_low = hx(ci$CI_L[1]),
         ci_high = hx(ci$CI_U[1]), n_obs = hx(nobs(fit)), n_clusters = hx(G), design = "",
         note = paste0("inverse_var_used=", attr(V, "inverse_var"), "|coef_test_cols=",
                       paste(names(ct), collapse = ";")))
  }, error = function(e) emit_err(arm, wt, "did_twfe", paste0("clubSandwich_inverse_var=", iv),
                                  "CR2", e))
}

meta <- read.csv(file.path(wd, "meta.csv"), colClasses = "character")

for (k in seq_len(nrow(meta))) {
  arm <- meta$arm[k]
  clustered <- meta$clustered[k] == "1"
  use_bmiss <- meta$use_bmiss[k] == "1"
  do_panel <- meta$panel[k] == "1"
  fd <- read_hex(file.path(wd, paste0("firm_", arm, ".csv")))
  fd$stratum <- factor(fd$stratum)
  first_level <- levels(fd$stratum)[1]

  for (wt in c("firm", "dagsverk")) {
    wextra <- if (wt == "dagsverk") list(weights = quote(m)) else list()
    cextra <- if (clustered) list(clusters = quote(cl)) else list()

    # ---------------------------------------------------------------- itt_dim
    tryCatch({
      f <- build("difference_in_means", y ~ z, fd, c(list(blocks = quote(stratum)), cextra, wextra))
      emit_estimatr(f, "z", arm, wt, "itt_dim", "estimatr", "difference_in_means",
                    note = paste0("nblocks=", f$nblocks))
    }, error = function(e) emit_err(arm, wt, "itt_dim", "estimatr", "difference_in_means", e))

    if (!do_panel) next   # singleton-strata cases: itt_dim only

    se_itt <- if (clustered) "CR2" else "HC2"
    xs <- if (use_bmiss) "z + b + bmiss" else "z + b"

    ref_ancova_lin(fd, arm, wt, se_itt, xs, use_bmiss, first_level, cextra, wextra)
    ref_lin_lmrule(fd, arm, wt, se_itt, use_bmiss, cextra, wextra)

    # ---------------------------------------------------------------- did_twfe CR2
    pd <- read_hex(file.path(wd, paste0("panel_", arm, ".csv")))
    G <- length(unique(pd$cl))
    fit <- did_lm(pd, wt)
    tryCatch({
      V0 <- sandwich::vcovCL(fit, cluster = pd$cl, type = "HC0", cadjust = FALSE)
      emit(arm = arm, weights = wt, estimator = "did_twfe", variant = "sandwich_vcovCL_HC0_dummies",
           se_type = "CR0", term = "d", estimate = hx(coef(fit)[["d"]]),
           std_error = hx(sqrt(V0["d", "d"])), n_obs = hx(nobs(fit)), n_clusters = hx(G))
    }, error = function(e) emit_err(arm, wt, "did_twfe", "sandwich_vcovCL_HC0_dummies", "CR0", e))
    ivs <- if (wt == "dagsverk") c("FALSE", "TRUE") else c("default")
    for (iv in ivs) ref_did_club_cr2(fit, pd, G, arm, wt, iv)
    # weighted: CR2 of the unweighted regression on sqrt(w)-transformed rows (working model I on
    # the transformed scale), as ANALYSIS.md §4 words it; compared with the two settings above
    if (wt == "dagsverk") {
      tryCatch({
        X <- model.matrix(~ d + factor(orgnr) + factor(kvartal), data = pd)
        sw <- sqrt(pd$w)
        yt <- pd$r * sw
        Xt <- X * sw
        ft <- lm(yt ~ 0 + Xt)
        Vt <- vcovCR(ft, cluster = pd$cl, type = "CR2")
        ct <- coef_test(ft, vcov = Vt, coefs = "Xtd", test = "Satterthwaite")
        emit(arm = arm, weights = wt, estimator = "did_twfe", variant = "clubSandwich_sqrtw_rows",
             se_type = "CR2", term = "d", estimate = hx(ct$beta[1]), std_error = hx(ct$SE[1]),
             df = hx(ct$df_Satt[1]), statistic = hx(ct$tstat[1]), p_value = hx(ct$p_Satt[1]),
             n_obs = hx(nobs(ft)), n_clusters = hx(G))
      }, error = function(e) emit_err(arm, wt, "did_twfe", "clubSandwich_sqrtw_rows", "CR2", e))
    }
    # estimatr on the same dummy regression (which clubSandwich setting it is pinned to), and the
    # absorbed version, and estimatr's CR1 "stata" (all dummies counted in K) for comparison
    for (se in c("CR2", "stata")) {
      tryCatch({
        f <- build("lm_robust", r ~ d + factor(orgnr) + factor(kvartal), pd,
                   c(list(clusters = quote(cl), se_type = se),
                     if (wt == "dagsverk") list(weights = quote(w)) else list()))
        emit_estimatr(f, "d", arm, wt, "did_twfe", "estimatr_dummies", se)
      }, error = function(e) emit_err(arm, wt, "did_twfe", "estimatr_dummies", se, e))
      tryCatch({
        f <- build("lm_robust", r ~ d, pd,
                   c(list(fixed_effects = ~orgnr + kvartal, clusters = quote(cl), se_type = se),
                     if (wt == "dagsverk") list(weights = quote(w)) else list()))
        emit_estimatr(f, "d", arm, wt, "did_twfe", "estimatr_fixed_effects", se)
      }, error = function(e) emit_err(arm, wt, "did_twfe", "estimatr_fixed_effects", se, e))
    }
  }
}

rows <- lapply(OUT, function(r) {
  v <- setNames(rep("", length(FIELDS)), FIELDS)
  for (n in names(r)) v[[n]] <- as.character(r[[n]])
  v
})
df <- as.data.frame(do.call(rbind, rows), stringsAsFactors = FALSE)
write.csv(df, file.path(wd, "r_out.csv"), row.names = FALSE)
