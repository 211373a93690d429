# R half of notebooks/event_study_cr2_reference.py (clubSandwich 0.5.8).
#
# Not meant to be run by hand: event_study_cr2_reference.py derives each contrast's panel as
# estimates_reference.py does (ANALYSIS.md §2-§3), adds the event-study dummies ev_* (z times
# 1{t - R = e}, reference e = -1), writes it to a temporary directory with every double as a C99
# hex float, and runs
#
#     LC_ALL=C Rscript --vanilla notebooks/event_study_cr2_reference.R <tmpdir>
#
# This script reads <tmpdir>/meta.csv (one line per contrast: arm, events = the ev_* names and
# their terms) and <tmpdir>/panel_<arm>.csv, fits lm(r ~ ev_* + factor(orgnr) + factor(kvartal)
# [, weights = w]), and writes <tmpdir>/r_out.csv: per weighting and coefficient, clubSandwich's
# CR2 (vcovCR(type = "CR2"), inverse_var = FALSE when weighted, as did_twfe's CR2 rows) with
# coef_test(test = "Satterthwaite") and conf_int(test = "Satterthwaite", level = 0.95), doubles
# as hex floats ("%a").

suppressPackageStartupMessages(library(clubSandwich))

args <- commandArgs(trailingOnly = TRUE)
wd <- args[1]

hx <- function(x) {
  if (is.null(x) || length(x) == 0) return("")
  x <- as.numeric(x)[1]
  if (is.na(x)) return("")
  sprintf("%a", x)
}

meta <- read.csv(file.path(wd, "meta.csv"), colClasses = "character")
out <- list()
for (k in seq_len(nrow(meta))) {
  arm <- meta$arm[k]
  evs <- strsplit(meta$events[k], ";")[[1]]
  terms <- strsplit(meta$terms[k], ";")[[1]]
  pd <- read.csv(file.path(wd, paste0("panel_", arm, ".csv")), colClasses = "character")
  for (v in c("r", "w", evs)) pd[[v]] <- as.numeric(pd[[v]])
  G <- length(unique(pd$cl))
  fml <- as.formula(paste("r ~", paste(evs, collapse = " + "), "+ factor(orgnr) + factor(kvartal)"))
  for (wt in c("firm", "dagsverk")) {
    res <- tryCatch({
      if (wt == "dagsverk") {
        fit <- lm(fml, data = pd, weights = w)
        V <- vcovCR(fit, cluster = pd$cl, type = "CR2", inverse_var = FALSE)
      } else {
        fit <- lm(fml, data = pd)
        V <- vcovCR(fit, cluster = pd$cl, type = "CR2")
      }
      kept <- evs[!is.na(coef(fit)[evs])]
      ct <- coef_test(fit, vcov = V, coefs = kept, test = "Satterthwaite")
      ci <- conf_int(fit, vcov = V, coefs = kept, test = "Satterthwaite", level = 0.95)
      lapply(seq_along(kept), function(i) {
        c(arm = arm, weights = wt, term = terms[match(kept[i], evs)],
          estimate = hx(ct$beta[i]), std_error = hx(ct$SE[i]), df = hx(ct$df_Satt[i]),
          statistic = hx(ct$tstat[i]), p_value = hx(ct$p_Satt[i]), ci_low = hx(ci$CI_L[i]),
          ci_high = hx(ci$CI_U[i]), n_obs = hx(nobs(fit)), n_clusters = hx(G),
          note = paste0("inverse_var_used=", attr(V, "inverse_var")))
      })
    }, error = function(e) {
      list(c(arm = arm, weights = wt, term = "", estimate = "", std_error = "", df = "",
             statistic = "", p_value = "", ci_low = "", ci_high = "", n_obs = "",
             n_clusters = "", note = paste0("ERROR: ", gsub("[\r\n]+", " ", conditionMessage(e)))))
    })
    out <- c(out, res)
  }
}
df <- as.data.frame(do.call(rbind, out), stringsAsFactors = FALSE)
write.csv(df, file.path(wd, "r_out.csv"), row.names = FALSE)
