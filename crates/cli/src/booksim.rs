//! Reading BookSim2 configuration files (`key = value;`, `//` comments,
//! `KEY=VALUE` overrides) into wafernoc's typed configuration.
//!
//! Every key used by the reference runs in `../shared/reference/booksim` is
//! understood. A key wafernoc does not model, or a value of a known key that
//! it does not support (e.g. `vc_busy_when_full = 1`), is an error naming the
//! key; nothing is silently ignored.

use std::collections::BTreeMap;

use wafernoc_mesh::sim::{SimControl, SimMode};
use wafernoc_mesh::{ConfigError, MeshSpec, NetworkConfig, Routing, Topology};
use wafernoc_router::{AllocatorKind, ArbiterKind, RouterConfig};
use wafernoc_traffic::{Pattern, Process, RateUnit, Synthetic, SyntheticSpec};

use crate::CliError;

/// A parsed BookSim configuration: key → (value, where it came from).
#[derive(Debug, Default, Clone)]
pub struct BooksimCfg {
    entries: BTreeMap<String, (String, String)>,
    /// The last list value (`{...}`) given to a key BookSim2 keeps in two
    /// slots, an integer one and a string one ([`LIST_KEYS`]), with where.
    lists: BTreeMap<String, (String, String)>,
}

/// Keys BookSim2 stores both as an integer and as a string
/// (booksim_config.cpp: `packet_size`, `packet_size_rate`), and reads from
/// the string slot whenever it is set (trafficmanager.cpp): an integer
/// assigned after a list does not replace the list.
const LIST_KEYS: [&str; 2] = ["packet_size", "packet_size_rate"];

/// Everything a BookSim configuration resolves to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Resolved {
    /// The network.
    pub network: NetworkConfig,
    /// The traffic.
    pub traffic: SyntheticSpec,
    /// The measurement control.
    pub sim: SimControl,
}

/// A statement for an error message: whole up to 100 characters, else its
/// first 80 and how many more (a TOML file given to `booksim` quoted the
/// whole file as one statement).
fn excerpt(s: &str) -> String {
    let n = s.chars().count();
    if n <= 100 {
        return s.to_string();
    }
    let head: String = s.chars().take(80).collect();
    format!("{head}... ({} more characters)", n - 80)
}

impl BooksimCfg {
    /// Parse the text of a configuration file.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CliError> {
        let mut cfg = BooksimCfg::default();
        // Strip comments, then split statements on ';'.
        let mut clean = String::new();
        for line in text.lines() {
            let l = match line.find("//") {
                Some(i) => &line[..i],
                None => line,
            };
            clean.push_str(l);
            clean.push('\n');
        }
        let mut line_no = 1usize;
        let n_stmts = clean.split(';').count();
        for (i, stmt) in clean.split(';').enumerate() {
            let here = line_no
                + stmt
                    .chars()
                    .take_while(|c| c.is_whitespace())
                    .filter(|&c| c == '\n')
                    .count();
            line_no += stmt.matches('\n').count();
            let s = stmt.trim();
            if s.is_empty() {
                continue;
            }
            // A statement over several lines is named by its line range,
            // and its text printed on one line (newlines as `\n`).
            let here = match s.matches('\n').count() {
                0 => here.to_string(),
                n => format!("{here}-{}", here + n),
            };
            let s_line = excerpt(&s.replace('\n', "\\n"));
            if i + 1 == n_stmts {
                // BookSim's parser requires the `;` (a syntax error there).
                return Err(CliError::new(format!(
                    "{origin}:{here}: missing `;` after `{s_line}`"
                )));
            }
            let Some((k, v)) = s.split_once('=') else {
                return Err(CliError::new(format!(
                    "{origin}:{here}: expected `key = value;`, found `{s_line}`"
                )));
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || k.contains(char::is_whitespace) {
                let k = k.replace('\n', "\\n");
                return Err(CliError::new(format!("{origin}:{here}: bad key `{k}`")));
            }
            check_value(v).map_err(|why| {
                let v = v.replace('\n', "\\n");
                CliError::new(format!("{origin}:{here}: `{k} = {v}`: {why}"))
            })?;
            cfg.insert(k, v, format!("{origin}:{here}"));
        }
        Ok(cfg)
    }

    /// Apply a command-line override `KEY=VALUE`.
    pub fn set(&mut self, kv: &str) -> Result<(), CliError> {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(CliError::new(format!("override `{kv}` is not KEY=VALUE")));
        };
        let (k, v) = (k.trim(), v.trim());
        check_value(v).map_err(|why| CliError::new(format!("command line: `{k} = {v}`: {why}")))?;
        self.insert(k, v, "command line".into());
        Ok(())
    }

    /// Record `key = value` (the last assignment wins, and for
    /// [`LIST_KEYS`] the last list too).
    fn insert(&mut self, k: &str, v: &str, origin: String) {
        if LIST_KEYS.contains(&k) && v.starts_with('{') {
            self.lists
                .insert(k.to_string(), (v.to_string(), origin.clone()));
        }
        self.entries.insert(k.to_string(), (v.to_string(), origin));
    }

    /// The configuration as `key = value;` lines (the resolved echo).
    pub fn echo(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    /// Turn the keys into wafernoc's configuration.
    pub fn resolve(&self) -> Result<Resolved, CliError> {
        let mut used: Vec<&str> = Vec::new();
        let get = |k: &str| self.entries.get(k).map(|(v, o)| (v.as_str(), o.as_str()));
        let mut take = |k: &'static str| {
            used.push(k);
            get(k)
        };
        fn bad(k: &str, origin: &str, v: &str, why: &str) -> CliError {
            if origin == "default" {
                // A key the file leaves out (an empty file said "default:
                // `topology = torus`", which read as a line of the file).
                return CliError::new(format!(
                    "`{k}` is not set, so BookSim2's default `{k} = {v}` applies: {why}"
                ));
            }
            CliError::new(format!("{origin}: `{k} = {v}`: {why}"))
        }
        // [`bad`] for integer key `k` with value `v`, naming where it was set.
        let bad_int = |k: &str, v: i64, why: &str| -> CliError {
            bad(
                k,
                get(k).map(|x| x.1).unwrap_or("default"),
                &v.to_string(),
                why,
            )
        };
        macro_rules! int {
            ($k:expr, $def:expr) => {
                match take($k) {
                    None => $def,
                    Some((v, o)) => v
                        .parse::<i64>()
                        .map_err(|_| bad($k, o, v, "expected an integer"))?,
                }
            };
        }
        macro_rules! float {
            ($k:expr, $def:expr) => {
                match take($k) {
                    None => $def,
                    Some((v, o)) => {
                        let x = v
                            .parse::<f64>()
                            .map_err(|_| bad($k, o, v, "expected a number"))?;
                        if !x.is_finite() {
                            return Err(bad($k, o, v, "expected a finite number"));
                        }
                        x
                    }
                }
            };
        }
        macro_rules! string {
            ($k:expr, $def:expr) => {
                match take($k) {
                    None => ($def.to_string(), "default".to_string()),
                    Some((v, o)) => (v.to_string(), o.to_string()),
                }
            };
        }
        // A string key wafernoc models at one value only (BookSim2's
        // default or not): refused otherwise, naming `why`.
        macro_rules! only_str {
            ($k:expr, $only:expr, $def:expr, $why:expr) => {{
                let (v, o) = string!($k, $def);
                if v != $only {
                    return Err(bad($k, &o, &v, $why));
                }
            }};
        }
        macro_rules! only {
            ($k:expr, $allowed:expr, $def:expr) => {{
                let v = int!($k, $def);
                if !$allowed.contains(&v) {
                    return Err(bad_int(
                        $k,
                        v,
                        &format!("wafernoc supports only {:?}", $allowed),
                    ));
                }
                v
            }};
        }
        let nonneg = |k: &str, v: i64| -> Result<u32, CliError> {
            if v < 0 || v > u32::MAX as i64 {
                Err(bad_int(k, v, "expected a non-negative integer"))
            } else {
                Ok(v as u32)
            }
        };

        // Defaults are BookSim2's own (booksim_config.cpp): a key left out
        // means what it means to BookSim2, or is refused.
        only_str!("topology", "mesh", "torus", "wafernoc models `mesh` only");
        let k = int!("k", 8);
        if !(1..=4096).contains(&k) {
            return Err(bad_int("k", k, "must be in 1..=4096"));
        }
        only!("n", [2], 2);
        only!("c", [1], 1);
        only!("use_noc_latency", [0, 1], 1);
        // BookSim2's mesh is k^n nodes; x and y are other topologies' keys.
        for key in ["x", "y"] {
            let v = int!(key, k);
            if v != k {
                return Err(bad_int(
                    key,
                    v,
                    &format!(
                        "wafernoc's BookSim2 mesh is k x k: give {key} = k ({k}) or leave it out"
                    ),
                ));
            }
        }
        let (rf, o) = string!("routing_function", "none");
        if rf == "none" {
            return Err(bad(
                "routing_function",
                &o,
                &rf,
                "BookSim2 aborts without a routing function; set one (e.g. dim_order)",
            ));
        }
        let routing = Routing::from_name(&rf).ok_or_else(|| {
            bad(
                "routing_function",
                &o,
                &rf,
                &format!(
                    "unknown; valid: dim_order, {}",
                    Routing::ALL
                        .iter()
                        .map(|x| x.0)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        only_str!(
            "router",
            "iq",
            "iq",
            "wafernoc models the input-queued `iq` router only"
        );
        let num_vcs = nonneg("num_vcs", int!("num_vcs", 16))? as usize;
        let vc_buf_size = nonneg("vc_buf_size", int!("vc_buf_size", 8))? as usize;
        let buf_size = int!("buf_size", -1);
        if buf_size != -1 {
            return Err(bad(
                "buf_size",
                get("buf_size").unwrap().1,
                &buf_size.to_string(),
                "use vc_buf_size (private buffers)",
            ));
        }
        only_str!(
            "buffer_policy",
            "private",
            "private",
            "wafernoc models `private` VC buffers only"
        );
        let wait_for_tail_credit = only!("wait_for_tail_credit", [0, 1], 0) == 1;
        only!("vc_busy_when_full", [0], 0);
        only!("vc_prioritize_empty", [0], 0);
        only!("hold_switch_for_packet", [0], 0);
        // Keys BookSim2 takes but whose meaning wafernoc does not share are
        // refused, naming why (docs/validation.md, "Router knobs"): a
        // run that differs from BookSim2 without saying so is worse than
        // none. Native configs keep wafernoc's own models of them.
        // BookSim2's iq router builds its allocators without the
        // configuration (iq_router.cpp, Allocator::NewAllocator with no
        // config): alloc_iters and arb_type never reach them. Its own way
        // of giving an allocator a parameter is in the allocator's name
        // (allocator.cpp, NewAllocator): `islip(N)` for N iterations,
        // `separable_input_first(ARB)` / `separable_output_first(ARB)` for
        // the arbiters inside.
        let alloc_iters = nonneg("alloc_iters", int!("alloc_iters", 1))?;
        if alloc_iters != 1 {
            return Err(bad_int(
                "alloc_iters",
                alloc_iters as i64,
                "BookSim2's iq router ignores alloc_iters (one iSLIP iteration); \
                 name the iterations in the allocator, as BookSim2 reads them: \
                 `sw_allocator = islip(2);`",
            ));
        }
        let (arb, o) = string!("arb_type", "round_robin");
        match arb.as_str() {
            "round_robin" => {}
            "matrix" => {
                return Err(bad(
                    "arb_type",
                    &o,
                    &arb,
                    "BookSim2's iq router ignores arb_type (its allocators' arbiters are \
                     round-robin); name the arbiter in the allocator, as BookSim2 reads it: \
                     `sw_allocator = separable_input_first(matrix);`",
                ))
            }
            _ => return Err(bad("arb_type", &o, &arb, "valid: round_robin")),
        }
        // An allocator name and its arbiter (`None` for iSLIP, which has
        // none: its pointers are its own).
        let alloc = |key: &'static str,
                     spec: &str,
                     origin: &str|
         -> Result<(AllocatorKind, Option<ArbiterKind>), CliError> {
            let valid = "valid: islip, islip(N) with N >= 1, separable_input_first, \
                         separable_output_first, either separable one with \
                         (round_robin) or (matrix)";
            let (name, param) = match spec.split_once('(') {
                None => (spec, None),
                Some((name, rest)) => match rest.strip_suffix(')') {
                    Some(p) => (name, Some(p.trim())),
                    None => return Err(bad(key, origin, spec, "no closing `)`")),
                },
            };
            let arbiter = |p: Option<&str>| match p {
                None | Some("round_robin") => Ok(Some(ArbiterKind::RoundRobin)),
                Some("matrix") => Ok(Some(ArbiterKind::Matrix)),
                Some(_) => Err(bad(key, origin, spec, valid)),
            };
            match name.trim() {
                "islip" => {
                    let iters = match param {
                        None => 1,
                        Some(p) => match p.parse::<u32>() {
                            Ok(n) if n >= 1 => n,
                            _ => return Err(bad(key, origin, spec, valid)),
                        },
                    };
                    Ok((AllocatorKind::Islip { iters }, None))
                }
                "separable_input_first" => {
                    Ok((AllocatorKind::SeparableInputFirst, arbiter(param)?))
                }
                "separable_output_first" => {
                    Ok((AllocatorKind::SeparableOutputFirst, arbiter(param)?))
                }
                _ => Err(bad(key, origin, spec, valid)),
            }
        };
        let (va, o) = string!("vc_allocator", "islip");
        let (vc_allocator, va_arb) = alloc("vc_allocator", &va, &o)?;
        let (sa, sa_origin) = string!("sw_allocator", "islip");
        let (sw_allocator, sa_arb) = alloc("sw_allocator", &sa, &sa_origin)?;
        // wafernoc's routers have one arbiter kind for both allocators.
        let arbiter = match (va_arb, sa_arb) {
            (Some(a), Some(b)) if a != b => {
                return Err(bad(
                    "sw_allocator",
                    &sa_origin,
                    &sa,
                    &format!(
                        "its arbiters differ from vc_allocator's (`{va}`); wafernoc's \
                         routers use one arbiter kind in both allocators"
                    ),
                ))
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => ArbiterKind::RoundRobin,
        };
        // BookSim2's speculation with its defaults: speculative requests
        // share the switch allocator at a lower priority
        // (`spec_sw_allocator = prio`), only towards a free output VC with
        // credit (`spec_check_elig`, `spec_check_cred`).
        let speculative = only!("speculative", [0, 1], 0) == 1;
        only_str!(
            "spec_sw_allocator",
            "prio",
            "prio",
            "wafernoc models BookSim2's default `prio` (one shared switch allocator)"
        );
        only!("spec_check_elig", [1], 1);
        only!("spec_check_cred", [1], 1);
        only!("spec_mask_by_reqs", [0], 0);
        if speculative && !matches!(sw_allocator, AllocatorKind::Islip { .. }) {
            return Err(bad_int(
                "speculative",
                1,
                "with a separable switch allocator BookSim2 weighs speculative requests \
                 by priority in its arbiters, which wafernoc's allocators do not: use islip",
            ));
        }
        // Routing and crossbar delays of 2 or more: BookSim2's stages then
        // work in batches (`batched_stages` below, docs/validation.md).
        let routing_delay = nonneg("routing_delay", int!("routing_delay", 1))?;
        let st_final_delay = nonneg("st_final_delay", int!("st_final_delay", 1))?;
        let output_delay = nonneg("output_delay", int!("output_delay", 0))?;
        if output_delay != 0 {
            return Err(bad_int(
                "output_delay",
                output_delay as i64,
                "BookSim2's iq router never reads output_delay; leave it out or 0 \
                 (native configs have an output delay)",
            ));
        }
        only!("vct", [0], 0);
        let rc = RouterConfig {
            num_vcs,
            vc_buf_size,
            routing_delay,
            vc_alloc_delay: nonneg("vc_alloc_delay", int!("vc_alloc_delay", 1))?,
            sw_alloc_delay: nonneg("sw_alloc_delay", int!("sw_alloc_delay", 1))?,
            st_prepare_delay: nonneg("st_prepare_delay", int!("st_prepare_delay", 0))?,
            st_final_delay,
            credit_delay: nonneg("credit_delay", int!("credit_delay", 0))?,
            output_delay,
            speculative,
            wait_for_tail_credit,
            vc_allocator,
            sw_allocator,
            arbiter,
            batched_stages: true,
            shared_speculation: true,
        };
        only!("input_speedup", [1], 1);
        only!("output_speedup", [1], 1);
        let isp = float!("internal_speedup", 1.0);
        if isp != 1.0 {
            return Err(bad(
                "internal_speedup",
                get("internal_speedup").unwrap().1,
                &isp.to_string(),
                "wafernoc supports only 1.0",
            ));
        }
        only!("noq", [0], 0);
        only!("classes", [1], 1);
        let (traffic, o) = string!("traffic", "uniform");
        let pattern = if let Some(args) = traffic.strip_prefix("hotspot") {
            hotspot_pattern(args, k as usize * k as usize)
                .map_err(|why| bad("traffic", &o, &traffic, &why))?
        } else {
            booksim_patterns()
                .into_iter()
                .find(|(n, _)| *n == traffic)
                .map(|(_, p)| p)
                .ok_or_else(|| {
                    let names: Vec<_> = booksim_patterns().iter().map(|x| x.0).collect();
                    bad(
                        "traffic",
                        &o,
                        &traffic,
                        &format!(
                            "valid: {}, hotspot({{{{NODES}}}}) or hotspot({{{{NODES}},{{RATES}}}})",
                            names.join(", ")
                        ),
                    )
                })?
        };
        // BookSim2's bit permutations need a power-of-two node count (an
        // even power for transpose: k × k nodes with k a power of two);
        // wafernoc's geometric transpose and bitcomp would run anyway.
        if matches!(
            pattern,
            Pattern::Transpose | Pattern::Bitcomp | Pattern::Bitrev | Pattern::Shuffle
        ) && !(k as u64).is_power_of_two()
        {
            return Err(bad(
                "traffic",
                &o,
                &traffic,
                &format!(
                    "BookSim2 refuses bit permutations unless the node count is a power of two \
                     (k = {k} gives {} nodes)",
                    k * k
                ),
            ));
        }
        // Packet sizes and their weights, BookSim2's way
        // (trafficmanager.cpp): `packet_size` is an integer, a list with
        // one entry per traffic class (`{4,8}`), or class 0's list of sizes
        // (`{{1,4}}`); `packet_size_rate` the same with integer weights,
        // one per size (a shorter list is padded with its last weight).
        // An integer after a list: BookSim2 keeps the list, which the
        // later line does not say; refused, naming both.
        for key in LIST_KEYS {
            if let (Some((v, o)), Some((lv, lo))) = (get(key), self.lists.get(key)) {
                if !v.starts_with('{') {
                    return Err(CliError::new(format!(
                        "{o}: `{key} = {v}` after `{key} = {lv}` ({lo}): BookSim2 keeps the \
                         list (an integer does not replace it); give one form"
                    )));
                }
            }
        }
        let (ps, ps_o) = string!("packet_size", "1");
        let sizes = class0_ints("packet_size", &ps, &ps_o)?;
        for &s in &sizes {
            if !(1..=u16::MAX as i64).contains(&s) {
                return Err(bad(
                    "packet_size",
                    &ps_o,
                    &ps,
                    &format!("size {s}: must be in 1..=65535"),
                ));
            }
        }
        let (pr, pr_o) = string!("packet_size_rate", "1");
        let weights = class0_ints("packet_size_rate", &pr, &pr_o)?;
        if weights.len() > sizes.len() {
            return Err(bad(
                "packet_size_rate",
                &pr_o,
                &pr,
                &format!(
                    "{} weights for {} packet size(s): BookSim2 would ignore the rest",
                    weights.len(),
                    sizes.len()
                ),
            ));
        }
        let weights = pad_last(weights, sizes.len());
        if weights.iter().any(|&w| w < 0) || (sizes.len() > 1 && weights.iter().all(|&w| w == 0)) {
            return Err(bad(
                "packet_size_rate",
                &pr_o,
                &pr,
                "weights must be non-negative integers, not all zero",
            ));
        }
        // BookSim2 adds the weights, and the sizes times the weights, in an
        // `int` (`_packet_size_max_val`, `_GetAveragePacketSize`).
        let wsum: i64 = weights.iter().sum();
        let swsum: i64 = sizes.iter().zip(&weights).map(|(s, w)| s * w).sum();
        if sizes.len() > 1 && wsum.max(swsum) > i64::from(i32::MAX) {
            return Err(bad(
                "packet_size_rate",
                &pr_o,
                &pr,
                "the weights (or sizes times weights) add up past BookSim2's integer range",
            ));
        }
        let (ip, o) = string!("injection_process", "bernoulli");
        let process = match ip.as_str() {
            "bernoulli" => Process::Bernoulli,
            "on_off" => Process::OnOff {
                alpha: float!("burst_alpha", 0.5),
                beta: float!("burst_beta", 0.5),
            },
            _ => {
                return Err(bad(
                    "injection_process",
                    &o,
                    &ip,
                    "valid: bernoulli, on_off",
                ))
            }
        };
        let uses_flits = only!("injection_rate_uses_flits", [0, 1], 0) == 1;
        let rate = float!("injection_rate", 0.1);
        only!("include_queuing", [1], 1);
        let seed = int!("seed", 0);
        let (st, o) = string!("sim_type", "latency");
        let sim_type = match st.as_str() {
            "latency" => SimMode::Latency,
            "throughput" => SimMode::Throughput,
            _ => return Err(bad("sim_type", &o, &st, "valid: latency, throughput")),
        };
        let sim = SimControl {
            sim_type,
            warmup_periods: nonneg("warmup_periods", int!("warmup_periods", 3))?,
            sample_period: nonneg("sample_period", int!("sample_period", 1000))? as u64,
            max_samples: nonneg("max_samples", int!("max_samples", 10))?,
            latency_thres: float!("latency_thres", 500.0),
            warmup_thres: float!("warmup_thres", 0.05),
            acc_warmup_thres: float!("acc_warmup_thres", 0.05),
            stopping_thres: float!("stopping_thres", 0.05),
            acc_stopping_thres: float!("acc_stopping_thres", 0.05),
        };
        only!("sim_count", [1], 1);
        let deadlock_timeout =
            nonneg("deadlock_warn_timeout", int!("deadlock_warn_timeout", 256))? as u64;
        if deadlock_timeout == 0 {
            // BookSim2 then warns at every cycle without progress; wafernoc
            // stops the run at this timeout (it used to become 1 cycle,
            // which reports deadlocks that are not there).
            return Err(bad_int(
                "deadlock_warn_timeout",
                0,
                "wafernoc stops a run at this timeout (BookSim2 only warns): give a number of \
                 cycles (BookSim2's default is 256)",
            ));
        }
        // Every key must have been understood.
        for (key, (v, o)) in &self.entries {
            if !used.contains(&key.as_str()) {
                return Err(CliError::new(format!(
                    "{o}: `{key} = {v}`: unknown or unsupported BookSim2 key (wafernoc never ignores a key)"
                )));
            }
        }
        let network = NetworkConfig {
            mesh: MeshSpec {
                rows: k as usize,
                cols: k as usize,
                ..Default::default()
            },
            router: rc,
            routing,
            classes: Vec::new(),
            deadlock_timeout,
            step_all: false,
        };
        network.validate().map_err(|e| {
            // Name where the key was set, as the other errors do (was:
            // "invalid router parameter `num_vcs`: ..." without the file).
            let key = match &e {
                ConfigError::Router(r) => Some(r.key),
                ConfigError::Topology(t) => Some(t.key),
                ConfigError::Other { key, .. } => Some(key.as_str()),
            };
            match key.and_then(|k| self.entries.get(k).map(|(v, o)| (k, v, o))) {
                Some((k, v, o)) => CliError::new(format!("{o}: `{k} = {v}`: {e}")),
                None => CliError::new(e.to_string()),
            }
        })?;
        let traffic = SyntheticSpec {
            pattern,
            process,
            rate,
            rate_unit: if uses_flits {
                RateUnit::Flits
            } else {
                RateUnit::Packets
            },
            sizes: sizes.iter().map(|&s| s as u16).collect(),
            // BookSim2 draws a size only when there are several.
            size_weights: if sizes.len() > 1 {
                weights.iter().map(|&w| w as f64).collect()
            } else {
                Vec::new()
            },
            class: 0,
            seed: seed as u64,
        };
        Ok(Resolved {
            network,
            traffic,
            sim,
        })
    }
}

impl BooksimCfg {
    /// The resolved traffic against the network's topology, for a command
    /// that runs it as the file gives it (`booksim`, `validate`; not the
    /// commands that take only the network, nor `sweep-rates`, whose
    /// points set their own rate), so that an impossible value names the
    /// line or override that set it (was: the key alone, from the run's
    /// own check).
    pub fn check_traffic(&self, res: &Resolved) -> Result<(), CliError> {
        let Ok(topo) = Topology::new(res.network.mesh.clone()) else {
            // The network's own error comes from the run's checks.
            return Ok(());
        };
        match Synthetic::new(res.traffic.clone(), &topo) {
            Ok(_) => Ok(()),
            Err(e) => {
                let k = e.key.booksim();
                Err(match self.entries.get(k) {
                    Some((v, o)) => CliError::new(format!("{o}: `{k} = {v}`: {e}")),
                    None => CliError::new(e.to_string()),
                })
            }
        }
    }
}

/// BookSim2's list syntax (config_utils.cpp, `tokenize_str`): a value
/// that does not start with `{` is one element; `{a,b,{c,d}}` is the
/// top-level elements `a`, `b` and `{c,d}`. An error if the braces do not
/// balance or something follows the closing one.
fn tokenize(v: &str) -> Result<Vec<&str>, &'static str> {
    let Some(body) = v.strip_prefix('{') else {
        return Ok(vec![v]);
    };
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, ch) in body.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            ',' if depth > 0 => {}
            ',' | '}' => {
                if i > start {
                    out.push(&body[start..i]);
                }
                start = i + 1;
                if ch == '}' {
                    // The closing brace of the list: nothing may follow.
                    return if i + 1 == body.len() {
                        Ok(out)
                    } else {
                        Err("text after the list's closing brace")
                    };
                }
            }
            _ => {}
        }
    }
    Err("unbalanced braces")
}

/// The integers of one BookSim2 list (`3`, `{1,4}`; config_utils.cpp
/// `tokenize_int`), each within BookSim2's `int` (it reads them with
/// `atoi`, which does not check the range).
fn int_list(v: &str) -> Result<Vec<i64>, String> {
    let items = tokenize(v)?;
    if items.is_empty() {
        return Err("an empty list".into());
    }
    items
        .iter()
        .map(|x| match x.parse::<i64>() {
            Ok(n) if i32::try_from(n).is_ok() => Ok(n),
            Ok(_) => Err(format!("`{x}` is outside BookSim2's integer range")),
            Err(_) if !x.is_empty() && x.chars().all(|c| c.is_ascii_digit() || c == '-') => {
                Err(format!("`{x}` is outside BookSim2's integer range"))
            }
            Err(_) => Err(format!("`{x}` is not an integer")),
        })
        .collect()
}

/// A value BookSim2's lexer (config.l) reads as one token: it skips
/// whitespace between tokens, so `{1, 4}` or `hotspot({{0, 9}})` fall
/// apart into several and the file is a syntax error there; and no token
/// starts with `+` (a number is `-?[0-9]...`). wafernoc refuses both, so
/// that a file it runs also runs in BookSim2, with the same meaning.
fn check_value(v: &str) -> Result<(), &'static str> {
    if v.contains('=') {
        Err("two statements run together: a `;` is missing")
    } else if v.contains(char::is_whitespace) {
        Err(
            "BookSim2's syntax allows no whitespace inside a value (its lexer splits it \
             into several tokens): remove the spaces",
        )
    } else if v.starts_with('+') || (v.starts_with('{') && v.contains('+')) {
        // (A list's token has no `+` anywhere; a string may hold one after
        // its first character, as `hotspot({{0,+9}})`.)
        Err("BookSim2's syntax has no `+` sign: write the number without it")
    } else {
        Ok(())
    }
}

/// `list` padded to `n` entries with its last one (BookSim2's
/// `resize(n, back())`); the caller has refused a longer list.
fn pad_last(mut list: Vec<i64>, n: usize) -> Vec<i64> {
    let last = *list.last().expect("int_list gives one or more");
    list.resize(n, last);
    list
}

/// BookSim2's `hotspot` pattern (traffic.cpp, `HotSpotTrafficPattern`):
/// every packet goes to one of the hotspot nodes, drawn with the integer
/// rates as weights (all 1 by default; a short list is padded with its
/// last rate). `args` is what follows the name:
/// `({{0,9}})` or `({{0,9},{3,1}})`. As wafernoc's hotspot pattern draws
/// uniformly from its node list, a node of rate r is listed r times (the
/// rates divided by their greatest common divisor first): the same law.
/// Refused: no list or `()` (BookSim2 then draws a random hotspot, as for a
/// node of −1), `({0,9})` and `({0,9},{1,1})` (BookSim2 reads hotspot 0
/// with rate 9), nodes outside the mesh, rates below 1 and lists of more
/// than 4096.
fn hotspot_pattern(args: &str, nodes: usize) -> Result<Pattern, String> {
    let inner = args
        .strip_prefix('(')
        .and_then(|a| a.strip_suffix(')'))
        .ok_or("expected hotspot(...): hotspot({{0,9}}), or with rates hotspot({{0,9},{3,1}})")?;
    let random = "no hotspot given: BookSim2 then draws a random one (RandomInt), which wafernoc \
                  does not reproduce; name the nodes, e.g. hotspot({{0,9}})";
    if inner.is_empty() {
        return Err(random.into());
    }
    let params = tokenize(inner).map_err(|why| {
        if why.starts_with("text after") {
            format!(
                "BookSim2 reads only the first list of hotspot({inner}), as one hotspot list \
                 with its rates: write hotspot({{{inner}}})"
            )
        } else {
            format!("{why} in hotspot(...)")
        }
    })?;
    if params.len() == 2 && params.iter().all(|p| !p.starts_with('{')) {
        return Err(format!(
            "BookSim2 reads hotspot({inner}) as hotspot {} with rate {}: write \
             hotspot({{{inner}}}) for two hotspots, or hotspot({{{{{}}},{{{}}}}}) for that",
            params[0], params[1], params[0], params[1]
        ));
    }
    let (hot, rates) = match params.as_slice() {
        [h] => (int_list(h)?, vec![1]),
        [h, r] if r.starts_with('{') || h.starts_with('{') => (int_list(h)?, int_list(r)?),
        _ => {
            return Err(format!(
                "BookSim2 would read only the first two entries of hotspot({inner}): \
                 write hotspot({{{{NODES}},{{RATES}}}})"
            ))
        }
    };
    if hot.iter().any(|&h| h < 0) {
        return Err(random.into());
    }
    if let Some(h) = hot.iter().find(|&&h| h as usize >= nodes) {
        return Err(format!(
            "hotspot {h} is not a node of the {nodes}-node mesh"
        ));
    }
    if rates.len() > hot.len() {
        return Err(format!(
            "{} rates for {} hotspots: BookSim2 would ignore the rest",
            rates.len(),
            hot.len()
        ));
    }
    if let Some(r) = rates.iter().find(|&&r| r < 1) {
        return Err(format!(
            "rate {r}: rates must be at least 1 (BookSim2 asserts it)"
        ));
    }
    let rates = pad_last(rates, hot.len());
    let g = rates.iter().fold(0, |g, &r| gcd(g, r));
    let total: i64 = rates.iter().map(|&r| r / g).sum();
    if total > 4096 {
        return Err(format!(
            "the rates, divided by their common divisor, add up to {total}: at most 4096"
        ));
    }
    let listed = hot
        .iter()
        .zip(&rates)
        .flat_map(|(&h, &r)| std::iter::repeat_n(h as u32, (r / g) as usize))
        .collect();
    Ok(Pattern::Hotspot {
        nodes: listed,
        fraction: 1.0,
    })
}

/// Greatest common divisor (of non-negative numbers; `gcd(0, n) = n`).
fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Class 0's integers of a BookSim2 per-class list key (`packet_size`,
/// `packet_size_rate`): `N`, `{N}` or `{{a,b,...}}`. With one traffic
/// class a list of several classes (`{1,4}`) is refused: BookSim2 would
/// use its first entry and ignore the others, which is rarely what the
/// file means (a mix of sizes in one class is `{{1,4}}`).
fn class0_ints(key: &str, v: &str, origin: &str) -> Result<Vec<i64>, CliError> {
    let err = |why: &str| CliError::new(format!("{origin}: `{key} = {v}`: {why}"));
    let classes = tokenize(v).map_err(err)?;
    match classes.len() {
        0 => return Err(err("an empty list")),
        1 => {}
        n => {
            let hint = if classes.iter().all(|x| !x.starts_with('{')) {
                format!(
                    "; one class with a mix of values is `{{{{{}}}}}`",
                    classes.join(",")
                )
            } else {
                String::new()
            };
            return Err(err(&format!(
                "a list of {n} traffic classes, and wafernoc runs one (BookSim2 would use \
                 the first entry only){hint}"
            )));
        }
    }
    int_list(classes[0]).map_err(|why| err(&why))
}

/// BookSim2's names of the traffic patterns the reader takes, with
/// wafernoc's pattern for each (the one table for both directions).
pub fn booksim_patterns() -> [(&'static str, Pattern); 7] {
    [
        ("uniform", Pattern::Uniform),
        ("transpose", Pattern::Transpose),
        ("bitcomp", Pattern::Bitcomp),
        ("bitrev", Pattern::Bitrev),
        ("shuffle", Pattern::Shuffle),
        ("tornado", Pattern::Tornado),
        ("neighbor", Pattern::Neighbor),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BookSim2's lexer takes no whitespace inside a value and no `+` sign
    /// (a syntax error there); around a value whitespace is fine.
    #[test]
    fn values_are_single_tokens() {
        let err = |text: &str| BooksimCfg::parse(text, "x.cfg").unwrap_err().to_string();
        let e = err("k = 8;\npacket_size = {{1, 4}};");
        assert!(
            e.contains("x.cfg:2: `packet_size = {{1, 4}}`") && e.contains("no whitespace"),
            "{e}"
        );
        let e = err("traffic = hotspot({{0,9}, {3}});");
        assert!(e.contains("no whitespace"), "{e}");
        let e = err("k = +8;");
        assert!(e.contains("`k = +8`") && e.contains("no `+` sign"), "{e}");
        let e = err("packet_size = {{1,+4}};");
        assert!(e.contains("no `+` sign"), "{e}");
        let mut c = BooksimCfg::parse("  k =\n 8 ;\ntraffic=uniform;", "x.cfg").unwrap();
        assert_eq!(c.echo()["k"], "8");
        let e = c.set("seed=+3").unwrap_err().to_string();
        assert!(e.starts_with("command line: `seed = +3`"), "{e}");
        assert!(c.set("injection_rate = 0.1 5").is_err());
        c.set(" seed = 3 ").unwrap();
        assert_eq!(c.echo()["seed"], "3");
    }

    /// Errors of the network's own checks name where the key was set
    /// (was: only the key); x and y must equal k.
    #[test]
    fn network_errors_name_where_the_key_was_set() {
        let base = "topology = mesh; routing_function = dim_order; k = 4;";
        // The resolve error of `base` with `line` appended and `set` applied.
        let err = |line: &str, set: Option<&str>| {
            let mut c = BooksimCfg::parse(&format!("{base}{line}"), "x.cfg").unwrap();
            if let Some(kv) = set {
                c.set(kv).unwrap();
            }
            c.resolve().unwrap_err().to_string()
        };
        let e = err("\nnum_vcs = 0;", None);
        assert!(e.starts_with("x.cfg:2: `num_vcs = 0`: "), "{e}");
        let e = err("", Some("vc_buf_size=0"));
        assert!(e.starts_with("command line: `vc_buf_size = 0`: "), "{e}");
        let e = err("", Some("x=8"));
        assert!(e.contains("give x = k (4)"), "{e}");
        // The traffic's own checks too (was: the key alone, for a rate).
        let traffic_err = |line: &str, set: Option<&str>| {
            let mut c = BooksimCfg::parse(&format!("{base}{line}"), "x.cfg").unwrap();
            if let Some(kv) = set {
                c.set(kv).unwrap();
            }
            let r = c.resolve().unwrap();
            c.check_traffic(&r).unwrap_err().to_string()
        };
        let e = traffic_err("\ninjection_rate = -1;", None);
        assert!(e.starts_with("x.cfg:2: `injection_rate = -1`: "), "{e}");
        let e = traffic_err(
            "\ninjection_process = on_off;\nburst_alpha = 0.2;\nburst_beta = 1.5;",
            None,
        );
        assert!(e.starts_with("x.cfg:4: `burst_beta = 1.5`: "), "{e}");
        let e = traffic_err("", Some("injection_rate=-0.5"));
        assert!(
            e.starts_with("command line: `injection_rate = -0.5`: "),
            "{e}"
        );
    }

    /// A statement over several lines is named by its line range and
    /// printed on one line (was: the error message broke over lines).
    #[test]
    fn a_statement_over_lines_is_named_by_its_range_on_one_line() {
        let err = |text: &str| BooksimCfg::parse(text, "x.cfg").unwrap_err().to_string();
        let e = err("topology = mesh;\nk = 4\n  5;\nn = 2;");
        assert!(e.starts_with("x.cfg:2-3: `k = 4\\n  5`:"), "{e}");
        assert!(!e.contains('\n'), "{e:?}");
        let e = err("k = 4;\nnum_vcs\n = 2");
        assert!(
            e.starts_with("x.cfg:2-3: missing `;` after `num_vcs\\n = 2`"),
            "{e}"
        );
        let e = err("k\nx = 4;");
        assert!(e.starts_with("x.cfg:1-2: bad key `k\\nx`"), "{e}");
        // A valid statement over lines is recorded with its range.
        let c = BooksimCfg::parse("k = 4;\nnum_vcs =\n\n 2;", "x.cfg").unwrap();
        assert_eq!(c.echo()["num_vcs"], "2");
    }

    #[test]
    fn parses_reference_syntax() {
        let c = BooksimCfg::parse(
            "topology = mesh; routing_function = dim_order;\n\
             k = 4; // comment\nnum_vcs = 2;\n\ntraffic = transpose;",
            "x.cfg",
        )
        .unwrap();
        let r = c.resolve().unwrap();
        assert_eq!(r.network.mesh.rows, 4);
        assert_eq!(r.network.router.num_vcs, 2);
        assert_eq!(r.traffic.pattern, Pattern::Transpose);
        // BookSim2's default credit_delay.
        assert_eq!(r.network.router.credit_delay, 0);
    }

    #[test]
    fn bit_permutations_need_a_power_of_two_as_in_booksim() {
        for t in ["transpose", "bitcomp", "bitrev", "shuffle"] {
            let cfg =
                format!("topology = mesh; routing_function = dim_order; k = 6; traffic = {t};");
            let e = BooksimCfg::parse(&cfg, "x.cfg")
                .unwrap()
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(e.contains("traffic") && e.contains("36 nodes"), "{e}");
            let cfg =
                format!("topology = mesh; routing_function = dim_order; k = 4; traffic = {t};");
            BooksimCfg::parse(&cfg, "x.cfg").unwrap().resolve().unwrap();
        }
        // Tornado and neighbor are digit permutations: any k.
        let cfg = "topology = mesh; routing_function = dim_order; k = 6; traffic = tornado;";
        BooksimCfg::parse(cfg, "x.cfg").unwrap().resolve().unwrap();
    }

    /// Knobs whose BookSim2 meaning wafernoc does not share are refused,
    /// each naming its key (docs/validation.md, "Router knobs").
    #[test]
    fn knobs_booksim_reads_differently_are_refused() {
        let base = "topology = mesh; routing_function = dim_order;";
        for (kv, key) in [
            ("alloc_iters = 2;", "alloc_iters"),
            ("arb_type = matrix;", "arb_type"),
            (
                "speculative = 1; sw_allocator = separable_input_first;",
                "speculative",
            ),
            ("output_delay = 1;", "output_delay"),
        ] {
            let c = BooksimCfg::parse(&format!("{base} {kv}"), "x.cfg").unwrap();
            let e = c.resolve().unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("BookSim2"), "{e}");
        }
        // The values BookSim2 and wafernoc agree on still run.
        for kv in [
            "routing_delay = 0;",
            "routing_delay = 2;",
            "st_final_delay = 2;",
            "speculative = 1;",
            "st_prepare_delay = 1;",
            "credit_delay = 2;",
            "wait_for_tail_credit = 1;",
        ] {
            let c = BooksimCfg::parse(&format!("{base} {kv}"), "x.cfg").unwrap();
            c.resolve().unwrap();
        }
    }

    /// BookSim2's allocator names with a parameter (allocator.cpp,
    /// `NewAllocator`): `islip(N)` iterations, a separable allocator's
    /// arbiter; malformed or unknown ones are refused, naming the key.
    #[test]
    fn allocator_names_carry_booksims_parameters() {
        let base = "topology = mesh; routing_function = dim_order;";
        let run = |kv: &str| {
            BooksimCfg::parse(&format!("{base} {kv}"), "x.cfg")
                .unwrap()
                .resolve()
        };
        let r = run("sw_allocator = islip(2); vc_allocator = islip(3);").unwrap();
        assert_eq!(
            r.network.router.sw_allocator,
            AllocatorKind::Islip { iters: 2 }
        );
        assert_eq!(
            r.network.router.vc_allocator,
            AllocatorKind::Islip { iters: 3 }
        );
        assert_eq!(r.network.router.arbiter, ArbiterKind::RoundRobin);
        let r = run("sw_allocator = separable_input_first(matrix); \
                     vc_allocator = separable_output_first(matrix);")
        .unwrap();
        assert_eq!(
            r.network.router.sw_allocator,
            AllocatorKind::SeparableInputFirst
        );
        assert_eq!(
            r.network.router.vc_allocator,
            AllocatorKind::SeparableOutputFirst
        );
        assert_eq!(r.network.router.arbiter, ArbiterKind::Matrix);
        // iSLIP has no arbiter to clash with the separable one's.
        let r =
            run("sw_allocator = islip(2); vc_allocator = separable_input_first(matrix);").unwrap();
        assert_eq!(r.network.router.arbiter, ArbiterKind::Matrix);
        // Without a parameter, BookSim2's iq router gives round robin.
        let r = run("sw_allocator = separable_input_first;").unwrap();
        assert_eq!(r.network.router.arbiter, ArbiterKind::RoundRobin);
        for (kv, key) in [
            ("sw_allocator = islip(0);", "sw_allocator"),
            ("sw_allocator = islip(x);", "sw_allocator"),
            ("vc_allocator = islip(2;", "vc_allocator"),
            (
                "sw_allocator = separable_input_first(tree(2,round_robin));",
                "sw_allocator",
            ),
            ("vc_allocator = wavefront;", "vc_allocator"),
            (
                "vc_allocator = separable_input_first(matrix); \
                 sw_allocator = separable_input_first;",
                "sw_allocator",
            ),
        ] {
            let e = run(kv).unwrap_err().to_string();
            assert!(e.contains(key), "{kv}: {e}");
        }
    }

    /// A key left out means BookSim2's default (booksim_config.cpp), or an
    /// error where wafernoc cannot model it: BookSim2 defaults to a torus,
    /// and aborts without a routing function.
    #[test]
    fn missing_topology_and_routing_are_booksims_defaults() {
        let c = BooksimCfg::parse("routing_function = dim_order;", "x.cfg").unwrap();
        let e = c.resolve().unwrap_err().to_string();
        assert!(
            e.contains("topology = torus") && e.contains("default"),
            "{e}"
        );
        let c = BooksimCfg::parse("topology = mesh;", "x.cfg").unwrap();
        let e = c.resolve().unwrap_err().to_string();
        assert!(
            e.contains("routing_function = none") && e.contains("aborts"),
            "{e}"
        );
    }

    #[test]
    fn a_statement_without_its_semicolon_is_an_error() {
        let e = BooksimCfg::parse("k = 4;\nnum_vcs = 2", "x.cfg")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.cfg:2") && e.contains("missing `;`"), "{e}");
        // Two statements run together.
        let e = BooksimCfg::parse("k = 4\nnum_vcs = 2;", "x.cfg")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.cfg:1") && e.contains("a `;` is missing"),
            "{e}"
        );
        // Trailing whitespace and comments after the last `;` are fine.
        BooksimCfg::parse("k = 4; // end\n\n", "x.cfg").unwrap();
    }

    #[test]
    fn unknown_key_is_named() {
        let c = BooksimCfg::parse(
            "topology = mesh; routing_function = dim_order; k = 4;\nfrobnicate = 3;",
            "x.cfg",
        )
        .unwrap();
        let e = c.resolve().unwrap_err().to_string();
        assert!(e.contains("frobnicate") && e.contains("x.cfg:2"), "{e}");
    }

    #[test]
    fn unsupported_value_is_named() {
        let c = BooksimCfg::parse(
            "topology = mesh; routing_function = dim_order; vc_busy_when_full = 1;",
            "x.cfg",
        )
        .unwrap();
        let e = c.resolve().unwrap_err().to_string();
        assert!(e.contains("vc_busy_when_full"), "{e}");
        let mut c = BooksimCfg::parse("topology = mesh;", "x.cfg").unwrap();
        c.set("routing_function=zigzag").unwrap();
        let e = c.resolve().unwrap_err().to_string();
        assert!(
            e.contains("routing_function") && e.contains("adaptive_unsafe"),
            "{e}"
        );
        let e = BooksimCfg::parse("k 4;", "x.cfg").unwrap_err().to_string();
        assert!(e.contains("x.cfg:1"), "{e}");
    }

    /// BookSim2's list syntax: class 0's sizes and weights, the padding of
    /// a short weight list, and a refusal, naming the key, of each form
    /// BookSim2 would read differently from what it says.
    #[test]
    fn packet_size_mixes() {
        assert_eq!(tokenize("4"), Ok(vec!["4"]));
        assert_eq!(tokenize("{1,4}"), Ok(vec!["1", "4"]));
        assert_eq!(tokenize("{{1,4},2}"), Ok(vec!["{1,4}", "2"]));
        assert_eq!(tokenize("{{1,4}"), Err("unbalanced braces"));
        assert_eq!(
            tokenize("{1,4}}"),
            Err("text after the list's closing brace")
        );
        let resolve = |extra: &str| {
            BooksimCfg::parse(
                &format!("topology = mesh; routing_function = dim_order; k = 4; {extra}"),
                "x.cfg",
            )
            .unwrap()
            .resolve()
        };
        let t = resolve("packet_size = {{2,8}}; packet_size_rate = {{3,1}};")
            .unwrap()
            .traffic;
        assert_eq!((t.sizes, t.size_weights), (vec![2, 8], vec![3.0, 1.0]));
        // Padded with the last weight; an integer weight is every size's.
        let t = resolve("packet_size = {{1,2,4}}; packet_size_rate = {{5,1}};")
            .unwrap()
            .traffic;
        assert_eq!(t.size_weights, vec![5.0, 1.0, 1.0]);
        let t = resolve("packet_size = {{1,4}}; packet_size_rate = 2;")
            .unwrap()
            .traffic;
        assert_eq!(t.size_weights, vec![2.0, 2.0]);
        // One size: no draw, whatever the weight.
        let t = resolve("packet_size = {4};").unwrap().traffic;
        assert_eq!((t.sizes, t.size_weights), (vec![4], vec![]));
        for (extra, key, why) in [
            ("packet_size = {1,4};", "packet_size", "2 traffic classes"),
            ("packet_size = {{1,0}};", "packet_size", "size 0"),
            (
                "packet_size = {{1,x}};",
                "packet_size",
                "`x` is not an integer",
            ),
            ("packet_size = {};", "packet_size", "an empty list"),
            ("packet_size = {{1,4};", "packet_size", "unbalanced braces"),
            ("packet_size = {{1,4}}x;", "packet_size", "text after"),
            (
                "packet_size = {{1,4},{2,8}};",
                "packet_size",
                "first entry only)",
            ),
            (
                "packet_size = {{1,99999999999}};",
                "packet_size",
                "integer range",
            ),
            (
                "packet_size = {{1,4}}; packet_size_rate = {{2147483647,2147483647}};",
                "packet_size_rate",
                "integer range",
            ),
            // An integer after a list: BookSim2 keeps the list.
            (
                "packet_size = {{2,8}}; packet_size = 4;",
                "packet_size",
                "BookSim2 keeps the list",
            ),
            (
                "packet_size = {{2,8}}; packet_size_rate = {{3,1}}; packet_size_rate = 1;",
                "packet_size_rate",
                "BookSim2 keeps the list",
            ),
            (
                "packet_size = {{1,4}}; packet_size_rate = {{1,1,1}};",
                "packet_size_rate",
                "3 weights for 2",
            ),
            (
                "packet_size = {{1,4}}; packet_size_rate = {{0,0}};",
                "packet_size_rate",
                "not all zero",
            ),
            (
                "packet_size = {{1,4}}; packet_size_rate = {{-1,2}};",
                "packet_size_rate",
                "non-negative",
            ),
        ] {
            let e = resolve(extra).unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{key} = ")) && e.contains(why),
                "{extra}: {e}"
            );
        }
    }

    /// BookSim2's `hotspot({{nodes},{rates}})`: a node of rate r listed r
    /// times (wafernoc draws uniformly from the list), and the forms
    /// BookSim2 reads differently from what they say refused.
    #[test]
    fn hotspot_traffic() {
        let resolve = |traffic: &str| {
            BooksimCfg::parse(
                &format!(
                    "topology = mesh; routing_function = dim_order; k = 4; traffic = {traffic};"
                ),
                "x.cfg",
            )
            .unwrap()
            .resolve()
        };
        let p = |traffic: &str| resolve(traffic).unwrap().traffic.pattern;
        assert_eq!(
            p("hotspot({{0,9}})"),
            Pattern::Hotspot {
                nodes: vec![0, 9],
                fraction: 1.0
            }
        );
        assert_eq!(
            p("hotspot({{0,9},{3}})"),
            Pattern::Hotspot {
                nodes: vec![0, 9],
                fraction: 1.0
            }
        );
        assert_eq!(
            p("hotspot({{5,1},{1,2}})"),
            Pattern::Hotspot {
                nodes: vec![5, 1, 1],
                fraction: 1.0
            }
        );
        // Rates by their common divisor: 4000:2000 is 2:1.
        assert_eq!(
            p("hotspot({{5,1},{4000,2000}})"),
            Pattern::Hotspot {
                nodes: vec![5, 5, 1],
                fraction: 1.0
            }
        );
        for (traffic, why) in [
            ("hotspot", "expected hotspot(...)"),
            ("hotspot({{0,9}}", "expected hotspot(...)"),
            ("hotspot()", "random one"),
            ("hotspot({0,9})", "hotspot 0 with rate 9"),
            ("hotspot({0,9},{1,1})", "only the first list"),
            ("hotspot({{-1}})", "random one"),
            ("hotspot({{16}})", "not a node of the 16-node mesh"),
            ("hotspot({{0,9},{0}})", "at least 1"),
            ("hotspot({{0,9},{1,1,1}})", "3 rates for 2 hotspots"),
            ("hotspot({{0,1},{5000,1}})", "add up to 5001"),
            ("hotspot({{0,1},{1,9223372036854775807}})", "integer range"),
            ("hotspot({{0,9},{1},{2}})", "first two entries"),
            ("hotspt", "hotspot({{NODES}})"),
        ] {
            let e = resolve(traffic).unwrap_err().to_string();
            assert!(
                e.contains("`traffic = ") && e.contains(why),
                "{traffic}: {e}"
            );
        }
        // The two-entry form: the message quotes what was written, and
        // both suggestions are accepted (was: both with a brace too many).
        let e = resolve("hotspot({0,9})").unwrap_err().to_string();
        assert!(
            e.contains(
                "reads hotspot({0,9}) as hotspot 0 with rate 9: write hotspot({{0,9}}) \
                        for two hotspots, or hotspot({{0},{9}}) for that"
            ),
            "{e}"
        );
        // The first suggestion, hotspot({{0,9}}), is the first case above.
        assert_eq!(
            p("hotspot({{0},{9}})"),
            Pattern::Hotspot {
                nodes: vec![0],
                fraction: 1.0
            }
        );
        let e = resolve("hotspot({0,9},{1,1})").unwrap_err().to_string();
        assert!(e.contains("write hotspot({{0,9},{1,1}})"), "{e}");
    }
}
