# R half of notebooks/cace_reference.py (estimatr 1.0.0): the cace_iv reference numbers and the
# Anderson-Rubin set by grid inversion.
#
# Not meant to be run by hand: cace_reference.py derives the firm-level data of every contrast
# (ANALYSIS.md §2-§3, with estimates_reference.py's own functions) plus D (received assistance by
# the cut-off, from takeup.csv), writes them with every double as a C99 hex float, and runs
#
#     LC_ALL=C Rscript --vanilla notebooks/cace_reference.R <tmpdir>
#
# Reads <tmpdir>/meta.csv (arm, clustered, use_bmiss) and <tmpdir>/firm_<arm>.csv
# (orgnr, stratum, cl, y, z, D, b, bmiss, m); writes, doubles again as hex floats ("%a"):
#   r_fits.csv   one row per (arm, weights, call, term): iv_robust (the row's variant and the other
#                one where estimatr allows it), iv_robust(diagnostics = TRUE) on factor() dummies,
#                the first stage lm_robust(D ~ z + ...), the reduced form lm_robust(y ~ z + ...);
#   r_grid.csv   every evaluation of the AR statistic: lm_robust(u ~ z + ..., same se_type,
#                clusters, weights and stratum effects) with u = y - beta * D, t^2 of z;
#   r_ar.csv     per (arm, weights): the AR set's shape and end-point brackets from the grid.
#
# The AR set is found without the closed form: t^2(beta) is evaluated on a coarse grid
# beta = c0 + s * tan(theta), theta = -pi/2 + k pi / G (k = 1..G-1), c0 = the 2SLS estimate,
# s = its SE (any centre and scale would do: tan() maps the grid onto the whole real line), plus
# points far out (c0 +- 1e8 s, and further if their verdict differs from the limit beta -> +-inf,
# which is the first-stage t^2 of the same regression); each change of verdict between
# neighbouring points is bisected in beta until the bracket is <= 1e-10 relative; the grid's
# largest t^2 is refined with optimize() (to tell "whole line" from "two rays" when the peak is
# near the critical value).

suppressPackageStartupMessages({
  library(estimatr)
})

args <- commandArgs(trailingOnly = TRUE)
wd <- args[1]
G_GRID <- as.integer(if (length(args) >= 2) args[2] else 2000)
REL_TOL <- 1e-10
NUMERIC <- c("y", "z", "D", "b", "bmiss", "m")

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
GRID <- list()
ARS <- list()

build <- function(fun, fml, data, extra) {
  cl <- as.call(c(list(as.name(fun), formula = fml, data = quote(data)), extra))
  eval(cl)
}

add_fit <- function(r) FITS[[length(FITS) + 1]] <<- r

emit_fit <- function(fit, term, arm, wt, call, variant, se_type, note = "") {
  tt <- tidy(fit)
  i <- which(tt$term == term)
  if (length(i) != 1) stop(paste("term", term, "not in fit"))
  cf <- coef(fit)
  FITS[[length(FITS) + 1]] <<- list(
    arm = arm, weights = wt, call = call, variant = variant, se_type = se_type, term = term,
    estimate = hx(tt$estimate[i]), std_error = hx(tt$std.error[i]), df = hx(tt$df[i]),
    statistic = hx(tt$statistic[i]), p_value = hx(tt$p.value[i]), ci_low = hx(tt$conf.low[i]),
    ci_high = hx(tt$conf.high[i]), n_obs = hx(fit$nobs),
    n_clusters = hx(if (!is.null(fit$nclusters)) fit$nclusters else NA),
    df_residual = hx(fit$df.residual), rank = hx(fit$rank),
    dropped = paste(names(cf)[is.na(cf)], collapse = ";"), note = note)
}

emit_err <- function(arm, wt, call, variant, se_type, e) {
  FITS[[length(FITS) + 1]] <<- list(arm = arm, weights = wt, call = call, variant = variant,
                                     se_type = se_type,
                                     note = paste0("ERROR: ", gsub("[\r\n]+", " ",
                                                                   conditionMessage(e))))
}

meta <- read.csv(file.path(wd, "meta.csv"), colClasses = "character")

for (k in seq_len(nrow(meta))) {
  arm <- meta$arm[k]
  clustered <- meta$clustered[k] == "1"
  use_bmiss <- meta$use_bmiss[k] == "1"
  fd <- read_hex(file.path(wd, paste0("firm_", arm, ".csv")))
  fd$stratum <- factor(fd$stratum)
  exog <- if (use_bmiss) "b + bmiss" else "b"
  se <- if (clustered) "CR2" else "HC2"

  for (wt in c("firm", "dagsverk")) {
    wextra <- if (wt == "dagsverk") list(weights = quote(m)) else list()
    cextra <- if (clustered) list(clusters = quote(cl)) else list()
    # estimatr 1.0.0 refuses fixed_effects with weighted CR2 (lm_robust_fit: "Cannot use
    # `fixed_effects` with weighted CR2 estimation"): those rows use factor(stratum) dummies
    variant <- if (clustered && wt == "dagsverk") "factor" else "fixed_effects"
    spec <- function(v) {
      if (v == "fixed_effects") list(rhs = "", extra = list(fixed_effects = ~stratum))
      else list(rhs = " + factor(stratum)", extra = list())
    }
    sp <- spec(variant)
    args_of <- function(s) c(list(se_type = se), s$extra, cextra, wextra)

    # ------------------------------------------------------------ cace_iv: iv_robust
    ivf <- as.formula(paste0("y ~ D + ", exog, sp$rhs, " | z + ", exog, sp$rhs))
    iv <- build("iv_robust", ivf, fd, args_of(sp))
    emit_fit(iv, "D", arm, wt, "iv_robust", variant, se)
    # the other variant, where estimatr allows it (a check: same numbers)
    other <- if (variant == "fixed_effects") "factor" else "fixed_effects"
    tryCatch({
      so <- spec(other)
      f <- build("iv_robust", as.formula(paste0("y ~ D + ", exog, so$rhs, " | z + ", exog, so$rhs)),
                 fd, args_of(so))
      emit_fit(f, "D", arm, wt, "iv_robust", other, se)
    }, error = function(e) emit_err(arm, wt, "iv_robust", other, se, e))
    # estimatr's own first-stage F (diagnostics = TRUE; estimatr will not return diagnostics
    # with fixed_effects, so on factor() dummies)
    tryCatch({
      sf <- spec("factor")
      f <- build("iv_robust", as.formula(paste0("y ~ D + ", exog, sf$rhs, " | z + ", exog, sf$rhs)),
                 fd, c(args_of(sf), list(diagnostics = TRUE)))
      fs <- f$diagnostic_first_stage_fstatistic
      add_fit(list(
        arm = arm, weights = wt, call = "iv_robust_diagnostics", variant = "factor",
        se_type = se, term = "D", estimate = hx(fs[["value"]]), df = hx(fs[["dendf"]]),
        p_value = hx(fs[["p.value"]]),
        note = paste0("nomdf=", fs[["nomdf"]], "|names=", paste(names(fs), collapse = ";"))))
    }, error = function(e) emit_err(arm, wt, "iv_robust_diagnostics", "factor", se, e))

    # ------------------------------------------------------------ first stage, reduced form
    fsf <- build("lm_robust", as.formula(paste0("D ~ z + ", exog, sp$rhs)), fd, args_of(sp))
    emit_fit(fsf, "z", arm, wt, "first_stage", variant, se)
    rff <- build("lm_robust", as.formula(paste0("y ~ z + ", exog, sp$rhs)), fd, args_of(sp))
    emit_fit(rff, "z", arm, wt, "reduced_form", variant, se)
    tryCatch({
      so <- spec(other)
      f <- build("lm_robust", as.formula(paste0("D ~ z + ", exog, so$rhs)), fd, args_of(so))
      emit_fit(f, "z", arm, wt, "first_stage", other, se)
      f <- build("lm_robust", as.formula(paste0("y ~ z + ", exog, so$rhs)), fd, args_of(so))
      emit_fit(f, "z", arm, wt, "reduced_form", other, se)
    }, error = function(e) emit_err(arm, wt, "first_stage", other, se, e))

    # ------------------------------------------------------------ AR by grid inversion
    arf <- as.formula(paste0("u ~ z + ", exog, sp$rhs))
    ar_args <- args_of(sp)
    t2_at <- function(beta, phase) {
      d2 <- fd
      d2$u <- d2$y - beta * d2$D
      f <- build("lm_robust", arf, d2, ar_args)
      tt <- tidy(f)
      i <- which(tt$term == "z")
      t2 <- (tt$estimate[i] / tt$std.error[i])^2
      GRID[[length(GRID) + 1]] <<- c(arm = arm, weights = wt, phase = phase, beta = hx(beta),
                                     coef = hx(tt$estimate[i]), se = hx(tt$std.error[i]),
                                     df = hx(tt$df[i]), t2 = hx(t2))
      list(t2 = t2, df = tt$df[i])
    }
    c0 <- unname(coef(iv)[["D"]])
    s <- unname(iv$std.error[["D"]])
    if (!is.finite(s) || s <= 0) s <- 1
    first <- t2_at(c0, "centre")
    ar_df <- first$df
    crit <- qt(0.975, ar_df)^2
    t2_fs <- unname((coef(fsf)[["z"]] / fsf$std.error[["z"]])^2)
    limit_accept <- t2_fs <= crit            # verdict as beta -> +-inf
    theta <- -pi / 2 + seq_len(G_GRID - 1) * pi / G_GRID
    betas <- c0 + s * tan(theta)
    t2s <- vapply(betas, function(b) t2_at(b, "grid")$t2, numeric(1))
    # far points, pushed out until their verdict is the limit's
    far <- function(sign) {
      m <- 1e8
      repeat {
        b <- c0 + sign * m * s
        r <- t2_at(b, "far")
        if ((r$t2 <= crit) == limit_accept || m >= 1e16) return(c(b, r$t2))
        m <- m * 1e4
      }
    }
    lo_far <- far(-1)
    hi_far <- far(1)
    B <- c(lo_far[1], betas, hi_far[1])
    T2 <- c(lo_far[2], t2s, hi_far[2])
    acc <- T2 <= crit
    changes <- which(acc[-1] != acc[-length(acc)])
    brackets <- list()
    for (j in changes) {
      a <- B[j]; b <- B[j + 1]; acc_a <- acc[j]
      it <- 0
      while (abs(b - a) > REL_TOL * max(abs(a), abs(b), 1e-3 * s) && it < 400) {
        mid <- a + (b - a) / 2
        if ((t2_at(mid, "bisect")$t2 <= crit) == acc_a) a <- mid else b <- mid
        it <- it + 1
      }
      # a keeps the verdict of the left neighbour, b the other one
      brackets[[length(brackets) + 1]] <- list(left = a, right = b, left_accepted = acc_a,
                                               iterations = it)
    }
    # the grid's largest t^2, refined (a peak just above crit between two grid points would be
    # two crossings inside one cell)
    jm <- which.max(t2s)
    lo_b <- betas[max(1, jm - 1)]; hi_b <- betas[min(length(betas), jm + 1)]
    opt <- optimize(function(b) t2_at(b, "peak")$t2, c(lo_b, hi_b), maximum = TRUE,
                    tol = 1e-12 * max(abs(lo_b), abs(hi_b), s))
    t2_peak <- max(opt$objective, max(t2s))
    n_acc_changes <- length(changes)
    shape <- NA
    ends <- c(NA, NA, NA, NA)   # low_accepted, low_rejected, high_accepted, high_rejected
    if (n_acc_changes == 0) {
      shape <- if (all(acc)) "whole_line" else "empty"
      if (shape == "whole_line" && opt$objective > crit) shape <- "CHECK_peak_above_crit"
    } else if (n_acc_changes == 2) {
      b1 <- brackets[[1]]; b2 <- brackets[[2]]
      if (!b1$left_accepted && b2$left_accepted) {
        shape <- "bounded"
        ends <- c(b1$right, b1$left, b2$left, b2$right)
      } else if (b1$left_accepted && !b2$left_accepted) {
        shape <- "two_rays"
        ends <- c(b1$left, b1$right, b2$right, b2$left)
      }
    } else if (n_acc_changes == 1) {
      shape <- "CHECK_one_crossing"
    } else {
      shape <- paste0("CHECK_", n_acc_changes, "_crossings")
    }
    ARS[[length(ARS) + 1]] <- list(
      arm = arm, weights = wt, variant = variant, se_type = se, centre = hx(c0), scale = hx(s),
      grid_points = G_GRID - 1, ar_df = hx(ar_df), crit = hx(crit), t2_first_stage = hx(t2_fs),
      limit_accept = limit_accept, lo_far = hx(lo_far[1]), hi_far = hx(hi_far[1]),
      n_changes = n_acc_changes, shape = shape, low_accepted = hx(ends[1]),
      low_rejected = hx(ends[2]), high_accepted = hx(ends[3]), high_rejected = hx(ends[4]),
      t2_peak = hx(t2_peak), beta_peak = hx(opt$maximum),
      bisect_iterations = paste(vapply(brackets, function(x) x$iterations, numeric(1)),
                                collapse = ";"))

    # a few fixed points for ar_points.csv
    pts <- c(0, c0 - 10 * s, c0 - 2 * s, c0 + 2 * s, c0 + 10 * s, -1e4, 1e4, opt$maximum)
    for (b in pts) t2_at(b, "point")
    for (e in ends) if (!is.na(e)) t2_at(e, "point_end")
  }
}

write_list <- function(L, path) {
  fields <- unique(unlist(lapply(L, names)))
  rows <- lapply(L, function(r) {
    v <- setNames(rep("", length(fields)), fields)
    for (n in names(r)) v[[n]] <- as.character(r[[n]])
    v
  })
  df <- as.data.frame(do.call(rbind, rows), stringsAsFactors = FALSE)
  write.csv(df, path, row.names = FALSE)
}
write_list(FITS, file.path(wd, "r_fits.csv"))
write_list(lapply(GRID, as.list), file.path(wd, "r_grid.csv"))
write_list(ARS, file.path(wd, "r_ar.csv"))
