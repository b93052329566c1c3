//! Importers from captured MoE routing data to [`RoutingTrace`].
//!
//! | format          | input                                   | phase   |
//! |-----------------|-----------------------------------------|---------|
//! | `generic`       | JSONL interchange layout (below)        | option (default decode) |
//! | `gpt-oss-jsonl` | generic layout with gpt-oss-20b defaults | decode  |
//! | `gpt-oss-json`  | original per-request `router_data` JSON (file or directory of `*.json`) | decode |
//! | `esft`          | ESFT `expert_weights_<layer>.txt` directory | prefill |
//!
//! # Generic JSONL interchange layout
//!
//! One JSON object per non-blank line, one line per request, in arrival
//! order:
//!
//! ```text
//! {"request": 7, "experts": [[[e, e, e, e], ...one list per layer], ...one entry per token],
//!  "weights": [[[w, w, w, w], ...], ...]}
//! ```
//!
//! Only `experts` is required. `request` (a `u32`, strictly increasing)
//! defaults to the 0-based index of the line among request lines.
//! `weights` is optional and, if present, has one entry per token that is
//! either `null` or a list shaped exactly like that token's `experts`.
//! **Any other key is accepted and ignored** (so the gpt-oss lines with
//! `source_path`, `dataset`, `category`, `first_decode_position` import
//! unchanged).
//!
//! The first line may instead be a header object with the key
//! `wafernoc_routing_trace` (the format version) and the fields of
//! [`RoutingMeta`]; this is what `wafernoc trace convert` writes, and it
//! makes text and binary routing traces convert losslessly.
//!
//! Shape: `num_layers` and `top_k` come from the header or options if given,
//! else from the first token; every token must then match. `num_experts`
//! comes from the header or options (or the format default) and every id is
//! checked against it, else it is `max id + 1`. A given value that disagrees
//! with the data is an error.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{path_name, Location, Result, TraceError};
use crate::packet::{check_text_version, json_err, next_line};
use crate::routing::{
    Phase, Request, RequestValidator, RoutingMeta, RoutingTrace, TextHeaderIn, TokenRouting,
    TEXT_HEADER_KEY,
};

/// Provenance of the gpt-oss-20b data (see `traces/gpt-oss-20b/README.md`).
pub const GPT_OSS_SOURCE: &str = "github.com/AmanPriyanshu/GPT-OSS-MoE-ExpertFingerprinting \
     commit 72b368f60045221f21eeb65debb27d58de92e565, data/**/*_examples.json";
/// Provenance of the ESFT data (see `traces/deepseek-esft/README.md`).
pub const ESFT_SOURCE: &str =
    "github.com/deepseek-ai/ESFT commit 579a7711e4b332b4c57b47e378a0cf240d85caa6, results/expert_scores/intent/";

/// Input layouts understood by [`import`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// gpt-oss-20b decode routing, one request per JSONL line.
    GptOssJsonl,
    /// gpt-oss-20b original per-request JSON with `router_data`.
    GptOssJson,
    /// DeepSeek ESFT `expert_weights_<layer>.txt` directory.
    Esft,
    /// Generic JSONL interchange layout.
    Generic,
}

impl ImportFormat {
    /// Every format, with its command-line name.
    pub const ALL: [(ImportFormat, &'static str); 4] = [
        (ImportFormat::GptOssJsonl, "gpt-oss-jsonl"),
        (ImportFormat::GptOssJson, "gpt-oss-json"),
        (ImportFormat::Esft, "esft"),
        (ImportFormat::Generic, "generic"),
    ];
}

impl std::fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(x, _)| x == self)
            .map_or("?", |(_, n)| n);
        f.write_str(name)
    }
}

impl std::str::FromStr for ImportFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(f, _)| *f).ok_or_else(|| {
            format!("unknown import format {s:?} (expected gpt-oss-jsonl, gpt-oss-json, esft or generic)")
        })
    }
}

/// Options of the importers. `None` means "use the header, the format's
/// default or infer from the data"; a given value is checked against them.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Routed experts per layer.
    pub num_experts: Option<u16>,
    /// Experts per token per layer.
    pub top_k: Option<u16>,
    /// MoE layers.
    pub num_layers: Option<u16>,
    /// Model name for the metadata.
    pub model: Option<String>,
    /// Provenance text for the metadata (replaces the default).
    pub source: Option<String>,
    /// Licence text for the metadata.
    pub license: Option<String>,
    /// Phase (generic only; the other formats have a fixed phase).
    pub phase: Option<Phase>,
    /// Do not keep router probabilities / gate weights.
    pub drop_weights: bool,
}

/// Import `input` (a file or a directory, depending on the format).
pub fn import(format: ImportFormat, input: &Path, opts: &ImportOptions) -> Result<RoutingTrace> {
    // The other formats' phase is fixed by their source (gpt-oss: decode,
    // esft: prefill); a given one would only mislabel the data.
    if opts.phase.is_some() && format != ImportFormat::Generic {
        return Err(TraceError::usage(
            &path_name(input),
            "--phase is for the generic format; this format's phase is fixed by its source",
        ));
    }
    match format {
        ImportFormat::GptOssJsonl => import_gpt_oss_jsonl(input, opts),
        ImportFormat::GptOssJson => import_gpt_oss_json(input, opts),
        ImportFormat::Esft => import_esft(input, opts),
        ImportFormat::Generic => import_generic(input, opts),
    }
}

fn open_buf(path: &Path) -> Result<BufReader<File>> {
    let f = File::open(path).map_err(|e| TraceError::io(&path_name(path), Location::File, e))?;
    Ok(BufReader::with_capacity(1 << 16, f))
}

fn base_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path_name(path), |n| n.to_string_lossy().into_owned())
}

/// Defaults a format supplies for the metadata.
struct Defaults {
    model: &'static str,
    source: String,
    license: &'static str,
    num_experts: Option<u16>,
    top_k: Option<u16>,
    num_layers: Option<u16>,
    phase: Option<Phase>,
}

impl Defaults {
    fn generic(input: &str) -> Self {
        Defaults {
            model: "unknown",
            source: format!("imported from {input} (generic JSONL)"),
            license: "unknown",
            num_experts: None,
            top_k: None,
            num_layers: None,
            phase: None,
        }
    }
}

/// Agree an option with a header value; `None` if neither is given.
fn agree<T: PartialEq + std::fmt::Display + Copy>(
    what: &str,
    header: Option<T>,
    opt: Option<T>,
    file: &str,
) -> Result<Option<T>> {
    match (header, opt) {
        (Some(h), Some(o)) if h != o => Err(TraceError::invalid(
            file,
            Location::Line(1),
            format!("the header says {what} = {h} but {o} was requested"),
        )),
        (h, o) => Ok(h.or(o)),
    }
}

/// Requests being collected, with the place each came from.
struct Collector {
    file: String,
    top_k: Option<usize>,
    num_layers: Option<usize>,
    max_id: Option<u16>,
    requests: Vec<Request>,
    locs: Vec<(String, Location, String)>,
}

impl Collector {
    fn new(file: &str, top_k: Option<u16>, num_layers: Option<u16>) -> Self {
        Collector {
            file: file.to_string(),
            top_k: top_k.map(usize::from),
            num_layers: num_layers.map(usize::from),
            max_id: None,
            requests: Vec::new(),
            locs: Vec::new(),
        }
    }

    /// Check a token's layer count and per-layer width against the shape
    /// (fixing the shape from the first token if not given).
    fn check_token(&mut self, loc: Location, what: &str, layers: &[&[u16]]) -> Result<()> {
        let l_want = *self.num_layers.get_or_insert(layers.len());
        if layers.len() != l_want {
            return Err(TraceError::invalid(
                &self.file,
                loc,
                format!(
                    "{what}: has {} layers, expected num_layers = {l_want}",
                    layers.len()
                ),
            ));
        }
        for (l, ids) in layers.iter().enumerate() {
            let k_want = *self.top_k.get_or_insert(ids.len());
            if ids.len() != k_want {
                return Err(TraceError::invalid(
                    &self.file,
                    loc,
                    format!(
                        "{what}, layer {l}: has {} experts, expected top_k = {k_want}",
                        ids.len()
                    ),
                ));
            }
            if let Some(&m) = ids.iter().max() {
                self.max_id = Some(self.max_id.map_or(m, |x| x.max(m)));
            }
        }
        Ok(())
    }

    fn push(&mut self, req: Request, file: &str, loc: Location, what: String) {
        self.requests.push(req);
        self.locs.push((file.to_string(), loc, what));
    }

    /// Resolve the metadata and validate every request.
    fn finish(self, meta_in: MetaIn) -> Result<RoutingTrace> {
        let file = self.file;
        let (Some(top_k), Some(num_layers)) = (self.top_k, self.num_layers) else {
            return Err(TraceError::invalid(
                &file,
                Location::File,
                "no token with experts: cannot infer top_k and num_layers (give them as \
                 options)",
            ));
        };
        let to_u16 = |what: &str, v: usize| {
            u16::try_from(v).map_err(|_| {
                TraceError::invalid(&file, Location::File, format!("{what} {v} is too large"))
            })
        };
        let num_experts = match meta_in.num_experts {
            Some(n) => n,
            None => match self.max_id {
                Some(m) => m.checked_add(1).ok_or_else(|| {
                    TraceError::invalid(
                        &file,
                        Location::File,
                        "expert id 65535 leaves no room for num_experts",
                    )
                })?,
                None => {
                    return Err(TraceError::invalid(
                        &file,
                        Location::File,
                        "no expert ids: cannot infer num_experts (give it as an option)",
                    ))
                }
            },
        };
        let meta = RoutingMeta {
            model: meta_in.model,
            source: meta_in.source,
            license: meta_in.license,
            num_experts,
            top_k: to_u16("top_k", top_k)?,
            num_layers: to_u16("num_layers", num_layers)?,
            phase: meta_in.phase,
        };
        let mut v = RequestValidator::new(&meta)
            .map_err(|m| TraceError::invalid(&file, Location::File, m))?;
        for (req, (f, loc, what)) in self.requests.iter().zip(&self.locs) {
            v.check(req).map_err(|m| {
                let m = if what.is_empty() {
                    m
                } else {
                    format!("{what}: {m}")
                };
                TraceError::invalid(f, *loc, m)
            })?;
        }
        Ok(RoutingTrace {
            meta,
            requests: self.requests,
        })
    }
}

/// Metadata resolved before the data is read (shape may still be inferred).
struct MetaIn {
    model: String,
    source: String,
    license: String,
    num_experts: Option<u16>,
    phase: Phase,
}

fn resolve_meta(
    d: Defaults,
    header: Option<&TextHeaderIn>,
    opts: &ImportOptions,
    file: &str,
) -> Result<(MetaIn, Option<u16>, Option<u16>)> {
    let ne = agree(
        "num_experts",
        header.map(|h| h.num_experts),
        opts.num_experts,
        file,
    )?
    .or(d.num_experts);
    let k = agree("top_k", header.map(|h| h.top_k), opts.top_k, file)?.or(d.top_k);
    let l = agree(
        "num_layers",
        header.map(|h| h.num_layers),
        opts.num_layers,
        file,
    )?
    .or(d.num_layers);
    let phase = agree("phase", header.map(|h| h.phase), opts.phase, file)?
        .or(d.phase)
        .unwrap_or(Phase::Decode);
    let pick = |h: Option<&String>, o: &Option<String>, def: String| {
        o.clone().or_else(|| h.cloned()).unwrap_or(def)
    };
    let meta = MetaIn {
        model: pick(header.map(|h| &h.model), &opts.model, d.model.to_string()),
        source: pick(header.map(|h| &h.source), &opts.source, d.source),
        license: pick(
            header.map(|h| &h.license),
            &opts.license,
            d.license.to_string(),
        ),
        num_experts: ne,
        phase,
    };
    Ok((meta, k, l))
}

// ------------------------------------------------------------ generic JSONL

#[derive(Deserialize)]
struct RequestLine {
    #[serde(default)]
    request: Option<u32>,
    experts: Vec<Vec<Vec<u16>>>,
    #[serde(default)]
    weights: Option<Vec<Option<Vec<Vec<f32>>>>>,
}

/// Import a generic JSONL file (header line optional).
pub fn import_generic(path: &Path, opts: &ImportOptions) -> Result<RoutingTrace> {
    let name = path_name(path);
    let d = Defaults::generic(&base_name(path));
    generic_impl(open_buf(path)?, &name, opts, d)
}

/// Import generic JSONL from any reader; `name` is used in messages.
pub fn import_generic_reader<R: BufRead>(
    r: R,
    name: &str,
    opts: &ImportOptions,
) -> Result<RoutingTrace> {
    generic_impl(r, name, opts, Defaults::generic(name))
}

/// Import the gpt-oss-20b decode JSONL (`decode_routing_128req.jsonl`):
/// the generic layout with defaults 32 experts, top-4, 24 layers, decode,
/// Apache-2.0.
pub fn import_gpt_oss_jsonl(path: &Path, opts: &ImportOptions) -> Result<RoutingTrace> {
    let name = path_name(path);
    let d = Defaults {
        model: "openai/gpt-oss-20b",
        source: format!(
            "{GPT_OSS_SOURCE}; via {} (decode tokens only)",
            base_name(path)
        ),
        license: "Apache-2.0",
        num_experts: Some(32),
        top_k: Some(4),
        num_layers: Some(24),
        phase: Some(Phase::Decode),
    };
    generic_impl(open_buf(path)?, &name, opts, d)
}

fn generic_impl<R: BufRead>(
    mut r: R,
    name: &str,
    opts: &ImportOptions,
    d: Defaults,
) -> Result<RoutingTrace> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut first: Option<(u64, RequestLine)> = None;
    let mut header: Option<TextHeaderIn> = None;
    if let Some(ln) = next_line(&mut r, &mut buf, &mut line, name)? {
        let obj: Map<String, Value> =
            serde_json::from_slice(&buf).map_err(|e| json_err(name, ln, &e))?;
        if let Some(v) = obj.get(TEXT_HEADER_KEY) {
            check_text_version(v, name, ln)?;
            let h: TextHeaderIn = serde_json::from_value(Value::Object(obj)).map_err(|e| {
                TraceError::malformed(name, Location::Line(ln), format!("bad header: {e}"))
            })?;
            header = Some(h);
        } else {
            let rl: RequestLine = serde_json::from_value(Value::Object(obj)).map_err(|e| {
                TraceError::malformed(name, Location::Line(ln), format!("bad request line: {e}"))
            })?;
            first = Some((ln, rl));
        }
    }
    let (meta_in, k, l) = resolve_meta(d, header.as_ref(), opts, name)?;
    let mut c = Collector::new(name, k, l);
    let mut index: u32 = 0;
    let mut add = |c: &mut Collector, ln: u64, rl: RequestLine| -> Result<()> {
        let loc = Location::Line(ln);
        let id = rl.request.unwrap_or(index);
        index = index.saturating_add(1);
        let what = format!("request id {id}");
        let mut tokens = Vec::with_capacity(rl.experts.len());
        if let Some(w) = &rl.weights {
            if w.len() != rl.experts.len() {
                return Err(TraceError::invalid(
                    name,
                    loc,
                    format!(
                        "{what}: has {} weight entries for {} tokens",
                        w.len(),
                        rl.experts.len()
                    ),
                ));
            }
        }
        let mut weights = if opts.drop_weights { None } else { rl.weights };
        let mut layers: Vec<&[u16]> = Vec::new();
        for (t, tok) in rl.experts.iter().enumerate() {
            layers.clear();
            layers.extend(tok.iter().map(Vec::as_slice));
            c.check_token(loc, &format!("{what}, token {t}"), &layers)?;
            let tw = match weights.as_mut().and_then(|w| w[t].take()) {
                None => None,
                Some(wl) => {
                    let shape_ok = wl.len() == tok.len()
                        && wl.iter().zip(tok).all(|(a, b)| a.len() == b.len());
                    if !shape_ok {
                        return Err(TraceError::invalid(
                            name,
                            loc,
                            format!("{what}, token {t}: weights are not shaped like experts"),
                        ));
                    }
                    Some(wl.into_iter().flatten().collect())
                }
            };
            tokens.push(TokenRouting {
                experts: tok.iter().flatten().copied().collect(),
                weights: tw,
            });
        }
        c.push(Request { id, tokens }, name, loc, String::new());
        Ok(())
    };
    if let Some((ln, rl)) = first {
        add(&mut c, ln, rl)?;
    }
    while let Some(ln) = next_line(&mut r, &mut buf, &mut line, name)? {
        let rl: RequestLine = serde_json::from_slice(&buf).map_err(|e| json_err(name, ln, &e))?;
        add(&mut c, ln, rl)?;
    }
    // An empty trace is fine when the header fixes its shape.
    if c.requests.is_empty() {
        if let Some(h) = &header {
            let meta = RoutingMeta {
                model: meta_in.model,
                source: meta_in.source,
                license: meta_in.license,
                num_experts: h.num_experts,
                top_k: h.top_k,
                num_layers: h.num_layers,
                phase: meta_in.phase,
            };
            meta.validate()
                .map_err(|m| TraceError::invalid(name, Location::Line(1), m))?;
            return Ok(RoutingTrace {
                meta,
                requests: Vec::new(),
            });
        }
    }
    c.finish(meta_in)
}

// ------------------------------------------------------- gpt-oss original

/// Import gpt-oss-20b requests in the original layout: a JSON file holding
/// one request object (or a list of them), or a directory of such `*.json`
/// files (taken in name order). Each object's `router_data` is a list of
/// `{"token_<pos>": {"layer_<l>": {"selected_experts": [..],
/// "selected_probs": [..]}}}`; tokens are taken in list order (several
/// tokens in one element in position order), layers must be exactly
/// `layer_0..layer_{L-1}`. Probabilities become the weights.
pub fn import_gpt_oss_json(input: &Path, opts: &ImportOptions) -> Result<RoutingTrace> {
    let in_name = path_name(input);
    let files: Vec<PathBuf> = if input.is_dir() {
        let rd =
            std::fs::read_dir(input).map_err(|e| TraceError::io(&in_name, Location::File, e))?;
        let mut v = Vec::new();
        for ent in rd {
            let p = ent
                .map_err(|e| TraceError::io(&in_name, Location::File, e))?
                .path();
            if p.extension().is_some_and(|x| x == "json") && p.is_file() {
                v.push(p);
            }
        }
        v.sort();
        if v.is_empty() {
            return Err(TraceError::usage(
                &in_name,
                "directory holds no *.json files",
            ));
        }
        v
    } else {
        vec![input.to_path_buf()]
    };
    let d = Defaults {
        model: "openai/gpt-oss-20b",
        source: format!(
            "{GPT_OSS_SOURCE}; via {} (decode tokens only, original layout)",
            if files.len() == 1 {
                base_name(&files[0])
            } else {
                format!("{} files in {}", files.len(), base_name(input))
            }
        ),
        license: "Apache-2.0",
        num_experts: Some(32),
        top_k: None,
        num_layers: None,
        phase: Some(Phase::Decode),
    };
    let (meta_in, k, l) = resolve_meta(d, None, opts, &in_name)?;
    let mut c = Collector::new(&in_name, k, l);
    let mut next_id: u32 = 0;
    for f in &files {
        let name = path_name(f);
        let v: Value = serde_json::from_reader(open_buf(f)?).map_err(|e| {
            TraceError::malformed(
                &name,
                Location::Line(e.line() as u64),
                format!("bad JSON: {e}"),
            )
        })?;
        let reqs: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(_) => vec![&v],
            _ => {
                return Err(TraceError::malformed(
                    &name,
                    Location::File,
                    "expected a request object or a list of request objects",
                ))
            }
        };
        for (ri, rv) in reqs.into_iter().enumerate() {
            c.file = name.clone();
            let req = orig_request(&mut c, rv, ri, next_id, opts.drop_weights)?;
            c.push(req, &name, Location::File, format!("request {ri}"));
            next_id = next_id.saturating_add(1);
        }
    }
    c.file = in_name;
    c.finish(meta_in)
}

fn prefixed_index(key: &str, prefix: &str) -> Option<u64> {
    key.strip_prefix(prefix)?.parse().ok()
}

fn orig_request(
    c: &mut Collector,
    rv: &Value,
    ri: usize,
    id: u32,
    drop_weights: bool,
) -> Result<Request> {
    let file = c.file.clone();
    let bad = |what: String| TraceError::invalid(&file, Location::File, what);
    let rd = rv
        .get("router_data")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("request {ri}: no \"router_data\" list")))?;
    let mut tokens = Vec::new();
    for (i, el) in rd.iter().enumerate() {
        let at = format!("request {ri}, router_data[{i}]");
        let obj = el
            .as_object()
            .ok_or_else(|| bad(format!("{at}: not an object")))?;
        let mut toks: Vec<(u64, &Value)> = Vec::with_capacity(obj.len());
        for (key, tv) in obj {
            let pos = prefixed_index(key, "token_")
                .ok_or_else(|| bad(format!("{at}: key {key:?} is not token_<position>")))?;
            toks.push((pos, tv));
        }
        toks.sort_by_key(|t| t.0);
        for (pos, tv) in toks {
            let at = format!("{at}, token_{pos}");
            let lobj = tv
                .as_object()
                .ok_or_else(|| bad(format!("{at}: not an object")))?;
            let mut layers: BTreeMap<u64, &Value> = BTreeMap::new();
            for (key, lv) in lobj {
                let l = prefixed_index(key, "layer_")
                    .ok_or_else(|| bad(format!("{at}: key {key:?} is not layer_<index>")))?;
                layers.insert(l, lv);
            }
            if let Some((i, _)) = layers.keys().enumerate().find(|(i, l)| *i as u64 != **l) {
                return Err(bad(format!(
                    "{at}: layer_{i} is missing (layers must be layer_0..layer_{{L-1}})"
                )));
            }
            let mut ids: Vec<Vec<u16>> = Vec::with_capacity(layers.len());
            let mut probs: Vec<Vec<f32>> = Vec::with_capacity(layers.len());
            let mut all_probs = !drop_weights;
            for (l, lv) in layers {
                let at = format!("{at}, layer_{l}");
                let e = lv
                    .get("selected_experts")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad(format!("{at}: no \"selected_experts\" list")))?;
                let e: Vec<u16> = e
                    .iter()
                    .map(|x| x.as_u64().and_then(|x| u16::try_from(x).ok()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        bad(format!(
                            "{at}: selected_experts must be integers in 0..65535"
                        ))
                    })?;
                match lv.get("selected_probs").and_then(Value::as_array) {
                    Some(p) if all_probs => {
                        let p: Vec<f32> = p
                            .iter()
                            .map(|x| x.as_f64().map(|x| x as f32))
                            .collect::<Option<_>>()
                            .ok_or_else(|| bad(format!("{at}: selected_probs must be numbers")))?;
                        if p.len() != e.len() {
                            return Err(bad(format!(
                                "{at}: {} selected_probs for {} selected_experts",
                                p.len(),
                                e.len()
                            )));
                        }
                        probs.push(p);
                    }
                    _ => all_probs = false,
                }
                ids.push(e);
            }
            let slices: Vec<&[u16]> = ids.iter().map(Vec::as_slice).collect();
            c.check_token(Location::File, &at, &slices)?;
            tokens.push(TokenRouting {
                experts: ids.concat(),
                weights: all_probs.then(|| probs.concat()),
            });
        }
    }
    Ok(Request { id, tokens })
}

// -------------------------------------------------------------------- ESFT

/// Import a DeepSeek ESFT `expert_scores/<task>/` directory: files
/// `expert_weights_<n>.txt` for MoE layers `n = 1..=L` (trace layer `n-1`).
/// Line `i` of every file is sequence `i`; a line is `T*k` tab-separated
/// expert ids, two tabs, then `T*k` gate weights; token `t` uses positions
/// `k*t .. k*t+k`. Defaults: 64 experts, top-6, prefill.
///
/// The files do not record `k`: a line is a flat list of ids, and any `k`
/// that divides it would cut it into tokens without an error. So `k` is
/// the model's own 6 (ESFT-vanilla-lite, DeepSeek-V2-Lite's
/// `num_experts_per_tok`), and another `opts.top_k` is refused.
pub fn import_esft(dir: &Path, opts: &ImportOptions) -> Result<RoutingTrace> {
    if opts.top_k.is_some_and(|k| k != 6) {
        return Err(TraceError::usage(
            &path_name(dir),
            "--top-k: esft files do not record top_k; their lines are cut into tokens of 6 ids \
             (ESFT-vanilla-lite, DeepSeek-V2-Lite's num_experts_per_tok), and another value \
             would cut them wrong",
        ));
    }
    import_esft_k(dir, opts)
}

/// [`import_esft`] with any `opts.top_k` (the tests' small fixtures cut
/// their lines into tokens of 2).
pub(crate) fn import_esft_k(dir: &Path, opts: &ImportOptions) -> Result<RoutingTrace> {
    let dir_name = path_name(dir);
    let rd = std::fs::read_dir(dir).map_err(|e| TraceError::io(&dir_name, Location::File, e))?;
    let mut found: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for ent in rd {
        let p = ent
            .map_err(|e| TraceError::io(&dir_name, Location::File, e))?
            .path();
        let n = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("expert_weights_"))
            .and_then(|n| n.strip_suffix(".txt"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = n {
            found.insert(n, p);
        }
    }
    if found.is_empty() {
        return Err(TraceError::usage(
            &dir_name,
            "no expert_weights_<layer>.txt files",
        ));
    }
    if let Some((i, _)) = found.keys().enumerate().find(|(i, n)| *i as u64 + 1 != **n) {
        return Err(TraceError::usage(
            &dir_name,
            format!(
                "expert_weights_{}.txt is missing (layers must be numbered 1..=L)",
                i + 1
            ),
        ));
    }
    let n_layers = found.len();
    if let Some(l) = opts.num_layers {
        if usize::from(l) != n_layers {
            return Err(TraceError::usage(
                &dir_name,
                format!("{n_layers} layer files found but num_layers = {l} was requested"),
            ));
        }
    }
    let d = Defaults {
        model: "ESFT-vanilla-lite (DeepSeek-V2-Lite architecture)",
        source: format!(
            "{ESFT_SOURCE}; via expert_weights_1..{n_layers}.txt of {} (MoE layer n is trace layer n-1; prefill)",
            base_name(dir)
        ),
        license: "MIT (code) and DeepSeek model licence",
        num_experts: Some(64),
        top_k: Some(6),
        num_layers: None,
        phase: Some(Phase::Prefill),
    };
    let (meta_in, k, _) = resolve_meta(d, None, opts, &dir_name)?;
    let k = usize::from(k.unwrap_or(6));
    if k == 0 {
        return Err(TraceError::usage(&dir_name, "top_k must be >= 1"));
    }
    let num_experts = meta_in.num_experts.unwrap_or(64);
    let paths: Vec<PathBuf> = found.into_values().collect();
    let names: Vec<String> = paths.iter().map(|p| path_name(p)).collect();
    let mut readers = paths
        .iter()
        .map(|p| open_buf(p))
        .collect::<Result<Vec<_>>>()?;
    let mut c = Collector::new(&dir_name, Some(k as u16), Some(n_layers as u16));
    let mut buf = Vec::new();
    let mut line: u64 = 0;
    let mut per_layer: Vec<(Vec<u16>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); n_layers];
    loop {
        line += 1;
        let mut eof = Vec::with_capacity(n_layers);
        for (l, r) in readers.iter_mut().enumerate() {
            buf.clear();
            let n = r
                .read_until(b'\n', &mut buf)
                .map_err(|e| TraceError::io(&names[l], Location::Line(line), e))?;
            eof.push(n == 0);
            if n > 0 {
                per_layer[l] =
                    esft_line(&buf, &names[l], line, l, k, num_experts, opts.drop_weights)?;
            }
        }
        if eof.iter().all(|&e| e) {
            break;
        }
        if let Some(l) = eof.iter().position(|&e| e) {
            let other = eof.iter().position(|&e| !e).unwrap_or(0);
            return Err(TraceError::truncated(
                &names[l],
                format!(
                    "ends after line {} but {} has line {line}",
                    line - 1,
                    names[other]
                ),
            ));
        }
        let t_count = per_layer[0].0.len() / k;
        for (l, (ids, _)) in per_layer.iter().enumerate() {
            if ids.len() / k != t_count {
                return Err(TraceError::invalid(
                    &names[l],
                    Location::Line(line),
                    format!(
                        "{} tokens but {} line {line} has {t_count}",
                        ids.len() / k,
                        names[0]
                    ),
                ));
            }
        }
        let with_w = !opts.drop_weights;
        let mut tokens = Vec::with_capacity(t_count);
        for t in 0..t_count {
            let mut experts = Vec::with_capacity(n_layers * k);
            let mut weights = Vec::with_capacity(if with_w { n_layers * k } else { 0 });
            for (ids, ws) in &per_layer {
                experts.extend_from_slice(&ids[t * k..t * k + k]);
                if with_w {
                    weights.extend_from_slice(&ws[t * k..t * k + k]);
                }
            }
            tokens.push(TokenRouting {
                experts,
                weights: with_w.then_some(weights),
            });
        }
        let id = u32::try_from(line - 1)
            .map_err(|_| TraceError::usage(&dir_name, "too many sequences"))?;
        c.push(
            Request { id, tokens },
            &dir_name,
            Location::Line(line),
            "expert_weights_*.txt".to_string(),
        );
    }
    c.finish(meta_in)
}

/// Parse one ESFT line: ids, two tabs, weights. Checks counts, range and
/// duplicates within a token.
fn esft_line(
    raw: &[u8],
    file: &str,
    line: u64,
    layer: usize,
    k: usize,
    num_experts: u16,
    drop_weights: bool,
) -> Result<(Vec<u16>, Vec<f32>)> {
    let loc = Location::Line(line);
    let bad = |m: String| TraceError::invalid(file, loc, m);
    let s = std::str::from_utf8(raw)
        .map_err(|_| TraceError::malformed(file, loc, "not valid UTF-8"))?;
    let s = s.trim_end_matches(['\n', '\r']);
    let Some((ids_s, w_s)) = s.split_once("\t\t") else {
        return Err(TraceError::malformed(
            file,
            loc,
            "expected tab-separated expert ids, two tabs, then tab-separated gate weights",
        ));
    };
    if ids_s.is_empty() {
        return Err(bad("no expert ids (empty sequence)".into()));
    }
    let mut ids = Vec::new();
    for (i, f) in ids_s.split('\t').enumerate() {
        let e: u16 = f.trim().parse().map_err(|_| {
            TraceError::malformed(
                file,
                loc,
                format!("field {i}: expert id {f:?} is not an integer in 0..65535"),
            )
        })?;
        if e >= num_experts {
            return Err(bad(format!(
                "token {}, layer {layer}: expert {e} >= num_experts {num_experts}",
                i / k
            )));
        }
        ids.push(e);
    }
    if ids.len() % k != 0 {
        return Err(bad(format!(
            "{} expert ids is not a multiple of top_k = {k}",
            ids.len()
        )));
    }
    for (t, tok) in ids.chunks_exact(k).enumerate() {
        for (j, e) in tok.iter().enumerate() {
            if tok[..j].contains(e) {
                return Err(bad(format!(
                    "token {t}, layer {layer}: duplicated expert {e}"
                )));
            }
        }
    }
    let mut ws = Vec::new();
    if !drop_weights {
        for (i, f) in w_s.split('\t').enumerate() {
            let w: f32 = f.trim().parse().map_err(|_| {
                TraceError::malformed(file, loc, format!("weight {i}: {f:?} is not a number"))
            })?;
            if !w.is_finite() {
                return Err(bad(format!("weight {i}: {f:?} is not finite")));
            }
            ws.push(w);
        }
        if ws.len() != ids.len() {
            return Err(bad(format!(
                "{} gate weights for {} expert ids",
                ws.len(),
                ids.len()
            )));
        }
    }
    Ok((ids, ws))
}
