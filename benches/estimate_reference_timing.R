# The R half of benches/estimate_vs_reference.sh: times estimatr 1.0.0 on the ITT family.
#
#     LC_ALL=C Rscript --vanilla benches/estimate_reference_timing.R DIR ESTIMATOR
#
# Reads DIR/firm_meta.csv and DIR/firm_<arm>.csv (written by estimate_reference_timing.py firmdata:
# the firm-level data of each contrast, doubles as C99 hex floats), runs the call that
# protocols/ANALYSIS.md §4 names for ESTIMATOR (as notebooks/estimates_reference.R does), firm
# weighting, and writes DIR/ref_<ESTIMATOR>.json: the seconds of the call plus tidy() (inside
# system.time, the data already in memory; summed over the contrasts), the seconds spent reading the
# files, and the estimate and standard error of z per contrast.
#   itt_dim     difference_in_means(y ~ z, blocks = stratum [, clusters = cl])
#   itt_ancova  lm_robust(y ~ z + b [+ bmiss], fixed_effects = ~stratum, se_type = HC2 | CR2)
#   itt_lin     lm_lin(y ~ z, covariates = ~ b [+ bmiss] + factor(stratum), se_type = HC2 | CR2)

suppressPackageStartupMessages(library(estimatr))

args <- commandArgs(trailingOnly = TRUE)
wd <- args[1]
estimator <- args[2]
NUMERIC <- c("y", "z", "b", "bmiss", "m")

meta <- read.csv(file.path(wd, "firm_meta.csv"), colClasses = "character")
read_s <- 0
fit_s <- 0
coefs <- character(0)
for (k in seq_len(nrow(meta))) {
  arm <- meta$arm[k]
  clustered <- meta$clustered[k] == "1"
  use_bmiss <- meta$use_bmiss[k] == "1"
  t_read <- system.time({
    fd <- read.csv(file.path(wd, paste0("firm_", arm, ".csv")), colClasses = "character")
    for (v in NUMERIC) fd[[v]] <- as.numeric(fd[[v]])
    fd$stratum <- factor(fd$stratum)
  })
  read_s <- read_s + t_read[["elapsed"]]
  se_type <- if (clustered) "CR2" else "HC2"
  xs <- if (use_bmiss) "b + bmiss" else "b"
  gc()
  t_fit <- system.time({
    fit <- switch(estimator,
      itt_dim = if (clustered) {
        difference_in_means(y ~ z, blocks = stratum, clusters = cl, data = fd)
      } else {
        difference_in_means(y ~ z, blocks = stratum, data = fd)
      },
      itt_ancova = if (clustered) {
        lm_robust(as.formula(paste("y ~ z +", xs)), data = fd, fixed_effects = ~stratum,
                  se_type = se_type, clusters = cl)
      } else {
        lm_robust(as.formula(paste("y ~ z +", xs)), data = fd, fixed_effects = ~stratum,
                  se_type = se_type)
      },
      itt_lin = if (clustered) {
        lm_lin(y ~ z, covariates = as.formula(paste("~", xs, "+ factor(stratum)")), data = fd,
               se_type = se_type, clusters = cl)
      } else {
        lm_lin(y ~ z, covariates = as.formula(paste("~", xs, "+ factor(stratum)")), data = fd,
               se_type = se_type)
      },
      stop(paste("unknown estimator", estimator)))
    tt <- tidy(fit)
  })
  fit_s <- fit_s + t_fit[["elapsed"]]
  i <- which(tt$term == "z")
  coefs <- c(coefs, sprintf('"%s": {"z": [%.17g, %.17g]}', arm, tt$estimate[i], tt$std.error[i]))
}
version <- as.character(packageVersion("estimatr"))
json <- sprintf(paste0('{"tool": "estimatr %s", "estimator": "%s", "read_s": %.6f, ',
                       '"fit_s": %.6f, "coefs": {%s}}'),
                version, estimator, read_s, fit_s, paste(coefs, collapse = ", "))
writeLines(json, file.path(wd, paste0("ref_", estimator, ".json")))
cat(sprintf("estimatr %s %s: fit %.3f s (read %.3f s)\n", version, estimator, fit_s, read_s))
