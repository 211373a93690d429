//! `cace_iv` in the run: the firm-level 2SLS and its panel version, each with its first stage,
//! take-up by arm and Anderson-Rubin set (protocols/ANALYSIS.md §8).

use std::collections::BTreeMap;

use ndarray::Array1;

use super::{Core, Ctx, Skipped};
use crate::estimate::iv::{self, ArSet, IvDetail, JointCovariance};
use crate::estimate::panel::{self, Panel};
use crate::estimate::received::Takeup;
use crate::estimate::{Estimate, EstimateError, Estimator, Weighting, f_p_value, t_quantile};

/// One panel fit of `cace_iv`: the coefficient of d, its CR1 variance, its CR2 variance and df
/// (when asked for), and the fit.
type PanelStage = (f64, f64, Option<(f64, f64)>, panel::TwfeFit);

/// Take-up by arm: firms, receivers and their weights (m, or 1 for the firm weighting).
struct TakeupCounts {
    /// Firms per arm (control 0, treated 1).
    n: [usize; 2],
    /// Receivers per arm.
    received: [usize; 2],
    /// Weight of the arm's firms and of its receivers.
    w: [[f64; 2]; 2],
}

impl TakeupCounts {
    fn of(firms: impl Iterator<Item = (bool, bool, f64)>) -> TakeupCounts {
        let mut t = TakeupCounts {
            n: [0; 2],
            received: [0; 2],
            w: [[0.0; 2]; 2],
        };
        for (treated, received, w) in firms {
            let a = usize::from(treated);
            t.n[a] += 1;
            t.w[a][0] += w;
            if received {
                t.received[a] += 1;
                t.w[a][1] += w;
            }
        }
        t
    }

    /// The (weighted) share of an arm's firms that received assistance.
    fn share(&self, treated: bool) -> f64 {
        let a = usize::from(treated);
        self.w[a][1] / self.w[a][0]
    }
}

impl Ctx<'_> {
    /// `cace_iv`: 2SLS of the post rate on received assistance, instrumented by assignment, with
    /// the ANCOVA design in both stages ([`crate::estimate::iv`] derives every piece from the reduced form
    /// and the first stage), and its first stage, take-up by arm and Anderson-Rubin set.
    pub(super) fn cace_iv(
        &self,
        details: &mut Vec<IvDetail>,
        skipped: &mut Vec<Skipped>,
    ) -> Result<Vec<Estimate>, EstimateError> {
        let c = self.contrast;
        let (Some(received), Some(takeup)) = (&c.received, &self.opts.takeup) else {
            return Err(EstimateError::InvalidData(
                "cace_iv needs take-up records and a cut-off".into(),
            ));
        };
        self.check_arms(&c.treated)?;
        let keep: Vec<usize> = (0..c.units.len()).collect();
        let y = self.y();
        let d: Array1<f64> = received.iter().map(|&r| f64::from(u8::from(r))).collect();
        let w = self.weights();
        let (x, base) = self.ancova_design();
        let n = x.nrows();
        let (reduced, influence, mut dropped) = self.ancova_z(&y, &x, &base, w.as_ref())?;
        let first = self.fit_ancova(&d, &x, w.as_ref())?;
        let (pi_y, pi_d) = (reduced.beta[0], first.beta[0]);
        if pi_d == 0.0 || !pi_d.is_finite() {
            return Err(EstimateError::Singular(format!(
                "assignment to {} does not move take-up by {} (first-stage coefficient {pi_d}): \
                 the complier effect is not identified",
                c.arm, takeup.cutoff
            )));
        }
        let beta = pi_y / pi_d;
        // The robust variance of the z coefficient of the reduced-form design for residuals `et`
        // (√w space): HC2, or CR2 with its Satterthwaite df, which do not depend on the residuals.
        let with_residuals = |et: Vec<f64>, dropped: &mut BTreeMap<String, usize>| {
            let mut f = reduced.clone();
            f.et = et;
            self.robust(&f, &influence, &keep, dropped)
        };
        let structural: Vec<f64> = (0..n).map(|i| reduced.et[i] - beta * first.et[i]).collect();
        let (v_structural, df, se_type, n_clusters) = with_residuals(structural, &mut dropped)?;
        let mut unused = BTreeMap::new();
        let v_yy = with_residuals(reduced.et.clone(), &mut unused)?.0;
        let v_dd = with_residuals(first.et.clone(), &mut unused)?.0;
        // The covariance by polarization, on a common scale so neither term swamps the other.
        let s = if v_yy > 0.0 {
            (v_dd / v_yy).sqrt()
        } else {
            1.0
        };
        let mixed: Vec<f64> = (0..n).map(|i| s * reduced.et[i] + first.et[i]).collect();
        let v_mixed = with_residuals(mixed, &mut unused)?.0;
        let v_yd = (v_mixed - s * s * v_yy - v_dd) / (2.0 * s);
        let covariance = JointCovariance { v_yy, v_yd, v_dd };
        let counts = TakeupCounts::of(
            (0..n).map(|k| (c.treated[k], received[k], w.as_ref().map_or(1.0, |w| w[k]))),
        );
        details.push(self.iv_detail(
            "ancova",
            &se_type,
            (pi_y, pi_d),
            covariance,
            df,
            &counts,
            takeup,
        ));
        let mut out = vec![self.finish(Core {
            estimator: Estimator::CaceIv,
            term: "received".into(),
            event_time: None,
            estimate: beta,
            variance: v_structural / (pi_d * pi_d),
            df,
            n_units: n,
            n_clusters,
            n_obs: n,
            se_type,
            ssc_factor: None,
            design: "Stratum fixed effects, 2SLS (received instrumented by assignment)".into(),
            dropped,
        })?];
        match self.cace_iv_panel(received, takeup, details, skipped) {
            Ok(rows) => out.extend(rows),
            Err(EstimateError::Cancelled) => return Err(EstimateError::Cancelled),
            Err(e) => skipped.push(Skipped {
                estimator: Estimator::CaceIv.name().into(),
                arm: c.arm.into(),
                weights: self.weighting.name().into(),
                se_type: Some("CR1".into()),
                error: format!("the panel version: {e}"),
            }),
        }
        Ok(out)
    }

    /// What `cace_iv` reports beside an estimate row.
    #[allow(clippy::too_many_arguments)]
    fn iv_detail(
        &self,
        model: &str,
        se_type: &str,
        (pi_y, pi_d): (f64, f64),
        covariance: JointCovariance,
        df: f64,
        counts: &TakeupCounts,
        takeup: &Takeup,
    ) -> IvDetail {
        let q = t_quantile(1.0 - (1.0 - self.opts.conf_level) / 2.0, df);
        let crit = q * q;
        let (shape, low, high) = iv::anderson_rubin(pi_y, pi_d, covariance, crit);
        let fs_f = pi_d * pi_d / covariance.v_dd;
        IvDetail {
            estimator: Estimator::CaceIv.name().into(),
            model: model.into(),
            outcome: self.opts.outcome.clone(),
            arm: self.contrast.arm.into(),
            versus: self.opts.control.clone(),
            weights: self.weighting.name().into(),
            se_type: se_type.into(),
            cutoff: takeup.cutoff.to_string(),
            first_stage: pi_d,
            first_stage_std_error: covariance.v_dd.sqrt(),
            first_stage_df: df,
            first_stage_f: fs_f,
            first_stage_p_value: f_p_value(fs_f, 1.0, df),
            takeup_treated: counts.share(true),
            takeup_control: counts.share(false),
            received_treated: counts.received[1],
            n_treated: counts.n[1],
            received_control: counts.received[0],
            n_control: counts.n[0],
            reduced_form: pi_y,
            reduced_form_std_error: covariance.v_yy.sqrt(),
            covariance,
            anderson_rubin: ArSet {
                shape,
                low,
                high,
                critical_value: crit,
                df,
                conf_level: self.opts.conf_level,
            },
        }
    }

    /// The panel version of `cace_iv`: the DiD with received × post instrumented by assigned ×
    /// post (firm and quarter effects), CR1 as `did_twfe` and CR2 when asked for. With one
    /// instrument and the same effects in both stages every piece comes from panel fits of the
    /// reduced form (r), the first stage (D × post) and, for the covariance, a mix of the two
    /// (polarization: the robust variance is a quadratic form in the residuals).
    fn cace_iv_panel(
        &self,
        received: &[bool],
        takeup: &Takeup,
        details: &mut Vec<IvDetail>,
        skipped: &mut Vec<Skipped>,
    ) -> Result<Vec<Estimate>, EstimateError> {
        let c = self.contrast;
        let (mut p, singletons) = self.panel(1, |rel| (rel >= 0).then_some(0));
        let pre = self.data.windows.pre as u16;
        let r = std::mem::take(&mut p.y);
        let rd: Vec<f64> = (0..p.firm.len())
            .map(|i| {
                f64::from(u8::from(
                    received[p.firm[i] as usize] && p.quarter[i] >= pre,
                ))
            })
            .collect();
        // Fits of the outcome `y` (the panel's, then restored): CR1 (and CR2) of d.
        let fit_of = |y: Vec<f64>, p: &mut Panel| -> Result<PanelStage, EstimateError> {
            p.y = y;
            let fit = panel::fit_cr1(p)?;
            let cr2 = if self.opts.did_cr2 {
                let r = panel::cr2(p, &fit, self.progress)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| EstimateError::Internal("no CR2 of d".into()))?;
                Some((r.variance, r.df))
            } else {
                None
            };
            Ok((fit.beta[0], fit.vcov_cr1[[0, 0]], cr2, fit))
        };
        let (pi_y, v1_yy, v2_yy, fit) = fit_of(r.clone(), &mut p)?;
        let (pi_d, v1_dd, v2_dd, _) = fit_of(rd.clone(), &mut p)?;
        if pi_d == 0.0 || !pi_d.is_finite() {
            return Err(EstimateError::Singular(format!(
                "assignment does not move received x post (first-stage coefficient {pi_d})"
            )));
        }
        let s = if v1_yy > 0.0 {
            (v1_dd / v1_yy).sqrt()
        } else {
            1.0
        };
        let mixed: Vec<f64> = r.iter().zip(&rd).map(|(a, b)| s * a + b).collect();
        let (_, v1_mx, v2_mx, _) = fit_of(mixed, &mut p)?;
        p.y = r;
        let beta = pi_y / pi_d;
        let polar = |yy: f64, dd: f64, mx: f64| JointCovariance {
            v_yy: yy,
            v_yd: (mx - s * s * yy - dd) / (2.0 * s),
            v_dd: dd,
        };
        // Take-up over the panel's firms (weights: their Σ mulige in the panel).
        let mut firm_w: Vec<f64> = vec![0.0; c.units.len()];
        let mut in_panel = vec![false; c.units.len()];
        for i in 0..p.firm.len() {
            let k = p.firm[i] as usize;
            in_panel[k] = true;
            firm_w[k] += p.weight(i);
        }
        let counts = TakeupCounts::of((0..c.units.len()).filter(|&k| in_panel[k]).map(|k| {
            let wk = if self.weighting == Weighting::Dagsverk {
                firm_w[k]
            } else {
                1.0
            };
            (c.treated[k], received[k], wk)
        }));
        let mut rows = Vec::new();
        let n_units = Self::panel_units(&p);
        let variants = [
            (
                "CR1",
                Some((polar(v1_yy, v1_dd, v1_mx), fit.n_clusters as f64 - 1.0)),
                Some(fit.ssc_factor),
            ),
            (
                "CR2",
                match (v2_yy, v2_dd, v2_mx) {
                    (Some(a), Some(b), Some(m)) => Some((polar(a.0, b.0, m.0), a.1)),
                    _ => None,
                },
                None,
            ),
        ];
        for (se_type, cov, ssc) in variants {
            let Some((cov, df)) = cov else { continue };
            let v = cov.v_yy - 2.0 * beta * cov.v_yd + beta * beta * cov.v_dd;
            details.push(self.iv_detail("did", se_type, (pi_y, pi_d), cov, df, &counts, takeup));
            let mut row = self.finish(Core {
                estimator: Estimator::CaceIv,
                term: "received_x_post".into(),
                event_time: None,
                estimate: beta,
                variance: v / (pi_d * pi_d),
                df,
                n_units,
                n_clusters: Some(fit.n_clusters),
                n_obs: fit.n_obs,
                se_type: se_type.into(),
                ssc_factor: ssc,
                design: "Two-way fixed effects (firm, quarter), 2SLS (received x post instrumented by assigned x post)".into(),
                dropped: self.panel_dropped(singletons),
            })?;
            row.confirmatory = false;
            rows.push(row);
        }
        let _ = skipped;
        Ok(rows)
    }
}
