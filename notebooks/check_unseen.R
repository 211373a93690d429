# R half of notebooks/check_unseen.py: the reference calls of notebooks/estimates_reference.R that
# produce the fixture rows (not its cross-check variants, which make it slow on a 1000-firm draw).
#
#     LC_ALL=C Rscript --vanilla notebooks/check_unseen.R <tmpdir>
#
# Input and output are those of estimates_reference.R: <tmpdir>/meta.csv (arm, clustered,
# use_bmiss, panel), <tmpdir>/firm_<arm>.csv and <tmpdir>/panel_<arm>.csv with every double as a
# C99 hex float, and <tmpdir>/r_out.csv with the same columns and variant names. The helpers
# (read_hex, hx, emit, emit_err, emit_estimatr, dropped_names, build, ref_ancova_lin,
# ref_lin_lmrule, did_lm, ref_did_club_cr2) are taken from estimates_reference.R itself: its
# top-level expressions are evaluated up to its main loop.
#
# Calls, exactly as estimates_reference.R makes them:
#   itt_dim     difference_in_means(y ~ z, blocks = stratum [, clusters = cl] [, weights = m])
#   itt_ancova  lm_robust(y ~ z + b [+ bmiss], fixed_effects = ~stratum, se_type = HC2|CR2 ...)
#               and the same with + factor(stratum) (used when estimatr refuses fixed_effects)
#   itt_lin     lm_lin(y ~ z, covariates = ~ b [+ bmiss] + factor(stratum), se_type = HC2|CR2 ...)
#   did_twfe    clubSandwich vcovCR(lm(r ~ d + factor(orgnr) + factor(kvartal) [, weights = w]),
#               cluster = cl, type = "CR2" [, inverse_var = FALSE when weighted]) + coef_test and
#               conf_int (Satterthwaite); weighted, by default, estimatr lm_robust(r ~ d +
#               factor(orgnr) + factor(kvartal), clusters = cl, se_type = "CR2", weights = w)
#               instead (the same numbers; see below), unless CHECK_UNSEEN_CLUB_WEIGHTED=1
# Unlike estimates_reference.R, a job with panel = 0 still gets itt_ancova and itt_lin (check_unseen
# uses such jobs for a contrast restricted to the strata having both arms).

suppressPackageStartupMessages({
  library(estimatr)
  library(clubSandwich)
  library(sandwich)
})

here <- local({
  a <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", a[grepl("^--file=", a)])
  if (length(f) == 1) dirname(normalizePath(f)) else "notebooks"
})
ref_exprs <- parse(file.path(here, "estimates_reference.R"))
found_main <- FALSE
for (e in ref_exprs) {
  if (is.call(e) && identical(e[[1]], as.name("<-")) && identical(e[[2]], as.name("meta"))) {
    found_main <- TRUE
    break
  }
  eval(e, globalenv())
}
if (!found_main) stop("estimates_reference.R changed: no `meta <- ...` line to stop at")
# now defined: args, wd, NUMERIC, read_hex, hx, OUT, emit, FIELDS, emit_err, emit_estimatr,
# dropped_names, build, ref_ancova_lin, ref_lin_lmrule, did_lm, ref_did_club_cr2

meta <- read.csv(file.path(wd, "meta.csv"), colClasses = "character")

for (k in seq_len(nrow(meta))) {
  arm <- meta$arm[k]
  clustered <- meta$clustered[k] == "1"
  use_bmiss <- meta$use_bmiss[k] == "1"
  do_panel <- meta$panel[k] == "1"
  fd <- read_hex(file.path(wd, paste0("firm_", arm, ".csv")))
  fd$stratum <- factor(fd$stratum)
  first_level <- levels(fd$stratum)[1]
  if (do_panel) pd <- read_hex(file.path(wd, paste0("panel_", arm, ".csv")))

  for (wt in c("firm", "dagsverk")) {
    wextra <- if (wt == "dagsverk") list(weights = quote(m)) else list()
    cextra <- if (clustered) list(clusters = quote(cl)) else list()

    # ---------------------------------------------------------------- itt_dim
    wmsg <- character(0)
    tryCatch(withCallingHandlers({
      f <- build("difference_in_means", y ~ z, fd, c(list(blocks = quote(stratum)), cextra, wextra))
      emit_estimatr(f, "z", arm, wt, "itt_dim", "estimatr", "difference_in_means",
                    note = paste0("nblocks=", f$nblocks,
                                  if (length(wmsg)) paste0("|WARNING: ", paste(wmsg, collapse = " / "))
                                  else ""))
    }, warning = function(w) {
      wmsg <<- c(wmsg, gsub("[\r\n]+", " ", conditionMessage(w)))
      invokeRestart("muffleWarning")
    }), error = function(e) emit_err(arm, wt, "itt_dim", "estimatr", "difference_in_means", e))

    se_itt <- if (clustered) "CR2" else "HC2"
    xs <- if (use_bmiss) "z + b + bmiss" else "z + b"

    ref_ancova_lin(fd, arm, wt, se_itt, xs, use_bmiss, first_level, cextra, wextra)

    # itt_lin with R lm's rule for collinear columns made explicit (estimates_reference.R)
    ref_lin_lmrule(fd, arm, wt, se_itt, use_bmiss, cextra, wextra)

    if (!do_panel) next

    # ---------------------------------------------------------------- did_twfe CR2
    G <- length(unique(pd$cl))
    if (wt == "dagsverk" && Sys.getenv("CHECK_UNSEEN_CLUB_WEIGHTED") != "1") {
      # weighted: clubSandwich's coef_test(Satterthwaite) with inverse_var = FALSE builds
      # N x N matrices (killed at 13 GB on a 10 000-row panel); estimatr's CR2 on the same dummy
      # regression is the same estimator (crosscheck.csv of every fixture: SE within 4e-15, df
      # within 7e-14 of clubSandwich inverse_var = FALSE), the call of estimates_reference.R's
      # "estimatr_dummies" cross-check
      tryCatch({
        f <- build("lm_robust", r ~ d + factor(orgnr) + factor(kvartal), pd,
                   list(clusters = quote(cl), se_type = "CR2", weights = quote(w)))
        emit_estimatr(f, "d", arm, wt, "did_twfe", "estimatr_dummies", "CR2")
      }, error = function(e) emit_err(arm, wt, "did_twfe", "estimatr_dummies", "CR2", e))
      next
    }
    ref_did_club_cr2(did_lm(pd, wt), pd, G, arm, wt, if (wt == "dagsverk") "FALSE" else "default")
  }
}

rows <- lapply(OUT, function(r) {
  v <- setNames(rep("", length(FIELDS)), FIELDS)
  for (n in names(r)) v[[n]] <- as.character(r[[n]])
  v
})
df <- as.data.frame(do.call(rbind, rows), stringsAsFactors = FALSE)
write.csv(df, file.path(wd, "r_out.csv"), row.names = FALSE)
