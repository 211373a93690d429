# R half of notebooks/cace_panel_reference.py (AER 1.2-10, clubSandwich 0.5.8, estimatr 1.0.0,
# sandwich 3.0-2): the CR2 numbers of the panel complier effect (received x post instrumented by
# assigned x post, firm and quarter effects) and their second opinions.
#
# Not meant to be run by hand: cace_panel_reference.py derives the panel of every contrast
# (ANALYSIS.md §2-§3 with estimates_reference.py's own functions) plus rd = D x post (D read back
# from takeup.csv as cace_reference.py does), writes it with every double as a C99 hex float, and
# runs
#
#     LC_ALL=C Rscript --vanilla notebooks/cace_panel_reference.R <tmpdir>
#
# Reads <tmpdir>/meta.csv (arm) and <tmpdir>/panel_<arm>.csv (orgnr, kvartal, cl, r, d, rd, w),
# and <tmpdir>/points_<arm>_<weights>.csv (label, beta): the beta at which the CR2 Anderson-Rubin
# statistic is evaluated. Writes <tmpdir>/r_fits.csv, doubles as hex floats ("%a"):
#   call = ivreg_clubSandwich   AER::ivreg(r ~ rd + factor(orgnr) + factor(kvartal) |
#                               d + factor(orgnr) + factor(kvartal) [, weights = w]) with
#                               clubSandwich vcovCR(type = "CR2", cluster = cl) + coef_test(
#                               test = "Satterthwaite") + conf_int; variant factor = as
#                               shipped, factor_tol1e-10 = with the eigenvalue cut-off of its
#                               B_s^(-1/2) at 1e-10 instead of 1e-12 (the CR2 rows of the
#                               fixture; see with_tol below);
#          ivreg_vcovCL_HC0     the same ivreg, sandwich::vcovCL(type = "HC0", cadjust = FALSE)
#                               (CR0; times pyfixest's ssc it must give pyfixest's CR1);
#          iv_robust            estimatr iv_robust(..., clusters = cl, se_type = "CR2") with
#                               fixed_effects = ~orgnr + kvartal (variant fixed_effects) or the
#                               factor() dummies in both parts (variant factor);
#          reduced_form, first_stage, difference
#                               lm(r | rd | r - rd ~ d + factor(orgnr) + factor(kvartal)) with
#                               clubSandwich CR2 + coef_test Satterthwaite (inverse_var = FALSE
#                               when weighted): V_yy, V_dd, and V_yy - 2 V_yd + V_dd;
#          ar_point             estimatr lm_robust(r - beta rd ~ d + factor(orgnr) +
#                               factor(kvartal), clusters = cl, se_type = "CR2" [, weights = w]):
#                               coefficient, SE, df of d at each beta of the points file.

suppressPackageStartupMessages({
  library(AER)
  library(clubSandwich)
  library(estimatr)
  library(sandwich)
})

args <- commandArgs(trailingOnly = TRUE)
wd <- args[1]
NUMERIC <- c("r", "d", "rd", "w", "beta")

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

FITS <- list()
add <- function(...) FITS[[length(FITS) + 1]] <<- list(...)
err <- function(arm, wt, call, variant, e) {
  add(arm = arm, weights = wt, call = call, variant = variant,
      note = paste0("ERROR: ", gsub("[\r\n]+", " ", conditionMessage(e))))
}

club <- function(fit, pd, coef, arm, wt, call, variant, weighted, extra_note = "") {
  t0 <- proc.time()[["elapsed"]]
  V <- if (weighted && inherits(fit, "lm") && !inherits(fit, "ivreg")) {
    vcovCR(fit, cluster = pd$cl, type = "CR2", inverse_var = FALSE)
  } else {
    vcovCR(fit, cluster = pd$cl, type = "CR2")
  }
  ct <- coef_test(fit, vcov = V, coefs = coef, test = "Satterthwaite")
  ci <- conf_int(fit, vcov = V, coefs = coef, test = "Satterthwaite", level = 0.95)
  add(arm = arm, weights = wt, call = call, variant = variant, term = coef,
      estimate = hx(ct$beta[1]), std_error = hx(ct$SE[1]), df = hx(ct$df_Satt[1]),
      statistic = hx(ct$tstat[1]), p_value = hx(ct$p_Satt[1]), ci_low = hx(ci$CI_L[1]),
      ci_high = hx(ci$CI_U[1]), n_obs = hx(nobs(fit)), n_clusters = hx(length(unique(pd$cl))),
      seconds = hx(proc.time()[["elapsed"]] - t0),
      note = paste0("inverse_var_used=", attr(V, "inverse_var"), "|", extra_note))
}

emit_estimatr <- function(fit, term, arm, wt, call, variant, note = "") {
  tt <- tidy(fit)
  i <- which(tt$term == term)
  if (length(i) != 1) stop(paste("term", term, "not in fit"))
  cf <- coef(fit)
  add(arm = arm, weights = wt, call = call, variant = variant, term = term,
      estimate = hx(tt$estimate[i]), std_error = hx(tt$std.error[i]), df = hx(tt$df[i]),
      statistic = hx(tt$statistic[i]), p_value = hx(tt$p.value[i]), ci_low = hx(tt$conf.low[i]),
      ci_high = hx(tt$conf.high[i]), n_obs = hx(fit$nobs), n_clusters = hx(fit$nclusters),
      note = paste0("dropped=", paste(names(cf)[is.na(cf)], collapse = ";"), note))
}

MATRIX_POWER <- clubSandwich:::matrix_power
MIN_EIG <- c()
# clubSandwich's matrix_power with another eigenvalue cut-off; records the smallest eigenvalue
# above the cut-off (to show that only a null space is cut)
with_tol <- function(tol, expr) {
  MIN_EIG <<- c()
  assignInNamespace("matrix_power", function(x, p, symmetric = TRUE, tol0 = -12) {
    ev <- eigen(x, symmetric = symmetric, only.values = TRUE)$values
    MIN_EIG <<- c(MIN_EIG, min(ev[ev > 10^tol]))
    MATRIX_POWER(x, p, symmetric = symmetric, tol = tol)
  }, "clubSandwich")
  on.exit(assignInNamespace("matrix_power", MATRIX_POWER, "clubSandwich"))
  force(expr)
  FITS[[length(FITS)]]$note <<- paste0(FITS[[length(FITS)]]$note, "min_kept_eigenvalue=",
                                       min(MIN_EIG))
  invisible(NULL)
}

meta <- read.csv(file.path(wd, "meta.csv"), colClasses = "character")
FE <- "factor(orgnr) + factor(kvartal)"

for (k in seq_len(nrow(meta))) {
  arm <- meta$arm[k]
  pd <- read_hex(file.path(wd, paste0("panel_", arm, ".csv")))
  pd$diff <- pd$r - pd$rd
  for (wt in c("firm", "dagsverk")) {
    weighted <- wt == "dagsverk"
    # ---------------------------------------------------------------- AER::ivreg + clubSandwich
    fiv <- as.formula(paste("r ~ rd +", FE, "| d +", FE))
    iv <- if (weighted) ivreg(fiv, data = pd, weights = w) else ivreg(fiv, data = pd)
    tryCatch(club(iv, pd, "rd", arm, wt, "ivreg_clubSandwich", "factor", weighted,
                  paste0("ncoef=", length(coef(iv)), "|na=", sum(is.na(coef(iv))))),
             error = function(e) err(arm, wt, "ivreg_clubSandwich", "factor", e))
    # the same with clubSandwich's pseudo-inverse cut-off (matrix_power: eigenvalues <= 1e-12
    # are dropped) at 1e-10: B_s has an exact null space (W_s 1_f for each firm f of cluster s,
    # from the firm effects), which R's computation from the ill-conditioned X-hat of a weak
    # instrument leaves at 1e-12..1e-10 in weighted fits; inverting those moves the
    # Satterthwaite df by up to 34 % (weak, ledere, dagsverk). The other eigenvalues of B_s are
    # >= 0.01, so 1e-10 only removes the null space.
    tryCatch(with_tol(-10, club(iv, pd, "rd", arm, wt, "ivreg_clubSandwich", "factor_tol1e-10",
                                weighted)),
             error = function(e) err(arm, wt, "ivreg_clubSandwich", "factor_tol1e-10", e))
    tryCatch({
      V0 <- sandwich::vcovCL(iv, cluster = pd$cl, type = "HC0", cadjust = FALSE)
      add(arm = arm, weights = wt, call = "ivreg_vcovCL_HC0", variant = "factor", term = "rd",
          estimate = hx(coef(iv)[["rd"]]), std_error = hx(sqrt(V0["rd", "rd"])),
          n_obs = hx(nobs(iv)), n_clusters = hx(length(unique(pd$cl))))
    }, error = function(e) err(arm, wt, "ivreg_vcovCL_HC0", "factor", e))

    # ---------------------------------------------------------------- estimatr iv_robust
    wextra <- if (weighted) list(weights = quote(w)) else list()
    tryCatch({
      cl <- as.call(c(list(as.name("iv_robust"), formula = r ~ rd | d, data = quote(pd),
                           fixed_effects = ~orgnr + kvartal, clusters = quote(cl),
                           se_type = "CR2"), wextra))
      emit_estimatr(eval(cl), "rd", arm, wt, "iv_robust", "fixed_effects")
    }, error = function(e) err(arm, wt, "iv_robust", "fixed_effects", e))
    tryCatch({
      cl <- as.call(c(list(as.name("iv_robust"), formula = fiv, data = quote(pd),
                           clusters = quote(cl), se_type = "CR2"), wextra))
      emit_estimatr(eval(cl), "rd", arm, wt, "iv_robust", "factor")
    }, error = function(e) err(arm, wt, "iv_robust", "factor", e))

    # ---------------------------------------------------------------- reduced form, first stage
    for (lhs in c("r", "rd", "diff")) {
      call <- c(r = "reduced_form", rd = "first_stage", diff = "difference")[[lhs]]
      fl <- as.formula(paste(lhs, "~ d +", FE))
      tryCatch({
        m <- if (weighted) lm(fl, data = pd, weights = w) else lm(fl, data = pd)
        club(m, pd, "d", arm, wt, call, "factor", weighted)
      }, error = function(e) err(arm, wt, call, "factor", e))
    }

    # ---------------------------------------------------------------- CR2 AR statistic at points
    pts <- read_hex(file.path(wd, paste0("points_", arm, "_", wt, ".csv")))
    fa <- as.formula(paste("u ~ d +", FE))
    for (i in seq_len(nrow(pts))) {
      b <- pts$beta[i]
      tryCatch({
        d2 <- pd
        d2$u <- d2$r - b * d2$rd
        cl <- as.call(c(list(as.name("lm_robust"), formula = fa, data = quote(d2),
                             clusters = quote(cl), se_type = "CR2"), wextra))
        f <- eval(cl)
        tt <- tidy(f)
        j <- which(tt$term == "d")
        add(arm = arm, weights = wt, call = "ar_point", variant = pts$label[i], term = "d",
            beta = hx(b), estimate = hx(tt$estimate[j]), std_error = hx(tt$std.error[j]),
            df = hx(tt$df[j]), statistic = hx((tt$estimate[j] / tt$std.error[j])^2))
      }, error = function(e) err(arm, wt, "ar_point", pts$label[i], e))
    }
  }
}

fields <- unique(unlist(lapply(FITS, names)))
rows <- lapply(FITS, function(r) {
  v <- setNames(rep("", length(fields)), fields)
  for (n in names(r)) v[[n]] <- as.character(r[[n]])
  v
})
df <- as.data.frame(do.call(rbind, rows), stringsAsFactors = FALSE)
write.csv(df, file.path(wd, "r_fits.csv"), row.names = FALSE)
