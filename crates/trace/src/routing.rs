//! MoE routing traces: which experts every token of every request was routed
//! to, in every MoE layer.
//!
//! Binary encoding (`.wnrt`, magic `WNOCRTE\0`): the codec header carries a
//! [`RoutingMeta`], then one record per [`Request`], so requests stream.
//!
//! Text encoding: the generic JSONL interchange layout (see
//! [`mod@crate::import`]) preceded by a header line
//! `{"wafernoc_routing_trace": 1, "model": .., "source": .., "license": ..,
//! "num_experts": .., "top_k": .., "num_layers": .., "phase": "decode"}`,
//! then one line per request `{"request": id, "experts": [[[e; top_k];
//! num_layers]; tokens], "weights": [[[w; top_k]; num_layers] | null; tokens]}`
//! (`weights` omitted when no token has weights).
//!
//! # Invariants (checked on read and write)
//!
//! - `num_experts >= 1`, `1 <= top_k <= num_experts`, `num_layers >= 1`;
//! - request ids strictly increase in file order (hence are unique);
//! - every request has at least one token;
//! - every token has exactly `num_layers * top_k` expert ids, layer-major
//!   (layer `l` is `experts[l*top_k .. (l+1)*top_k]`), each `< num_experts`,
//!   with no expert repeated within one layer of one token;
//! - `weights`, when present, has the same length as `experts` and only
//!   finite values.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::codec::{
    self, RecordReader, RecordWriter, LIMIT_BYTES, ROUTING_MAGIC, TEXT_FORMAT_VERSION,
};
use crate::error::{fused, open_file, path_name, Location, Result, TraceError};
use crate::packet::{write_json_line, STREAM_NAME};

/// Which inference phase the routing was recorded in; decides the default
/// batching (see [`crate::batching`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// One token per request per step (continuous batching of requests).
    Decode,
    /// All tokens of a sequence at once (chunked prefill).
    Prefill,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Decode => "decode",
            Phase::Prefill => "prefill",
        })
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "decode" => Ok(Phase::Decode),
            "prefill" => Ok(Phase::Prefill),
            _ => Err(format!("unknown phase {s:?} (expected decode or prefill)")),
        }
    }
}

/// Description of a routing trace: model shape and provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingMeta {
    /// Model name, e.g. `openai/gpt-oss-20b`.
    pub model: String,
    /// Provenance: source repository, commit, files, conversion command.
    pub source: String,
    /// Licence of the data.
    pub license: String,
    /// Routed experts per MoE layer (expert ids are `0..num_experts`).
    pub num_experts: u16,
    /// Experts selected per token per layer.
    pub top_k: u16,
    /// Number of MoE layers recorded.
    pub num_layers: u16,
    /// Inference phase of the recording.
    pub phase: Phase,
}

impl RoutingMeta {
    /// Expert ids per token: `num_layers * top_k`.
    pub fn ids_per_token(&self) -> usize {
        usize::from(self.num_layers) * usize::from(self.top_k)
    }

    /// Check the shape fields.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_experts == 0 {
            return Err("num_experts must be >= 1".into());
        }
        if self.top_k == 0 || self.top_k > self.num_experts {
            return Err(format!(
                "top_k must be in 1..={} (num_experts), got {}",
                self.num_experts, self.top_k
            ));
        }
        if self.num_layers == 0 {
            return Err("num_layers must be >= 1".into());
        }
        for (k, v) in [
            ("model", &self.model),
            ("source", &self.source),
            ("license", &self.license),
        ] {
            if v.len() > LIMIT_BYTES {
                return Err(format!("{k} is longer than {LIMIT_BYTES} bytes"));
            }
        }
        Ok(())
    }
}

/// Routing of one token through every MoE layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRouting {
    /// `num_layers * top_k` expert ids, layer-major; within a layer in the
    /// router's order (highest probability first where known).
    pub experts: Vec<u16>,
    /// Router probabilities / gate weights matching `experts`, if recorded.
    pub weights: Option<Vec<f32>>,
}

impl TokenRouting {
    /// The `top_k` experts of layer `layer`.
    ///
    /// # Panics
    /// If `layer` is out of range for a validated token of this `top_k`.
    pub fn layer(&self, layer: usize, top_k: usize) -> &[u16] {
        &self.experts[layer * top_k..(layer + 1) * top_k]
    }
}

/// One request (sequence) and the routing of each of its tokens, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Request id (strictly increasing in file order).
    pub id: u32,
    /// Tokens in generation (decode) or sequence (prefill) order.
    pub tokens: Vec<TokenRouting>,
}

/// A whole routing trace in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingTrace {
    /// Shape and provenance.
    pub meta: RoutingMeta,
    /// Requests in file (arrival) order.
    pub requests: Vec<Request>,
}

/// Streaming validator of the routing-trace invariants.
#[derive(Debug, Clone)]
pub struct RequestValidator {
    num_experts: u16,
    top_k: usize,
    num_layers: usize,
    last_id: Option<u32>,
    /// `seen[e] == stamp` iff expert `e` was seen in the current layer.
    seen: Vec<u32>,
    stamp: u32,
    count: u64,
}

impl RequestValidator {
    /// Validate `meta` and start a validator for its requests.
    pub fn new(meta: &RoutingMeta) -> Result<Self, String> {
        meta.validate()?;
        Ok(RequestValidator {
            num_experts: meta.num_experts,
            top_k: usize::from(meta.top_k),
            num_layers: usize::from(meta.num_layers),
            last_id: None,
            seen: vec![0; usize::from(meta.num_experts)],
            stamp: 0,
            count: 0,
        })
    }

    /// Check the next request in file order. Messages name the request
    /// (record index and id), token and layer at fault.
    pub fn check(&mut self, req: &Request) -> Result<(), String> {
        let n = self.count;
        let id = req.id;
        let at = format!("record {n} (request id {id})");
        if let Some(last) = self.last_id {
            if id <= last {
                return Err(format!(
                    "{at}: request ids must strictly increase (previous id {last})"
                ));
            }
        }
        if req.tokens.is_empty() {
            return Err(format!("{at}: request has no tokens"));
        }
        let want = self.num_layers * self.top_k;
        for (t, tok) in req.tokens.iter().enumerate() {
            if tok.experts.len() != want {
                return Err(format!(
                    "{at}, token {t}: has {} expert ids, expected num_layers*top_k = {}*{} = {want}",
                    tok.experts.len(),
                    self.num_layers,
                    self.top_k
                ));
            }
            for (l, layer) in tok.experts.chunks_exact(self.top_k).enumerate() {
                // A fresh stamp per (token, layer); on wrap-around clear.
                self.stamp = self.stamp.wrapping_add(1);
                if self.stamp == 0 {
                    self.seen.fill(0);
                    self.stamp = 1;
                }
                let stamp = self.stamp;
                for &e in layer {
                    if e >= self.num_experts {
                        return Err(format!(
                            "{at}, token {t}, layer {l}: expert {e} >= num_experts {}",
                            self.num_experts
                        ));
                    }
                    let slot = &mut self.seen[usize::from(e)];
                    if *slot == stamp {
                        return Err(format!("{at}, token {t}, layer {l}: duplicated expert {e}"));
                    }
                    *slot = stamp;
                }
            }
            if let Some(w) = &tok.weights {
                if w.len() != want {
                    return Err(format!(
                        "{at}, token {t}: has {} weights, expected {want}",
                        w.len()
                    ));
                }
                if let Some(i) = w.iter().position(|x| !x.is_finite()) {
                    return Err(format!(
                        "{at}, token {t}, layer {}: weight {} is not finite",
                        i / self.top_k,
                        w[i]
                    ));
                }
            }
        }
        self.last_id = Some(id);
        self.count += 1;
        Ok(())
    }
}

impl RoutingTrace {
    /// Total number of tokens over all requests.
    pub fn num_tokens(&self) -> usize {
        self.requests.iter().map(|r| r.tokens.len()).sum()
    }

    /// Check every invariant; `name` is used in error messages.
    pub fn validate(&self, name: &str) -> Result<()> {
        let mut v = RequestValidator::new(&self.meta)
            .map_err(|m| TraceError::invalid(name, Location::Header, m))?;
        for (i, r) in self.requests.iter().enumerate() {
            v.check(r)
                .map_err(|m| TraceError::invalid(name, Location::Record(i as u64), m))?;
        }
        Ok(())
    }

    /// Load a routing trace in either encoding (detected from the first
    /// bytes). Text files go through the generic importer without options,
    /// so a headerless generic JSONL file also loads. The file is opened
    /// and read once, so `path` may be a pipe (`/dev/stdin`, a FIFO).
    pub fn load(path: &Path) -> Result<Self> {
        let (fmt, r, name) = crate::convert::open_detected(path)?;
        Self::from_detected(fmt, r, &name)
    }

    /// Read a file [`open_detected`](crate::convert::open_detected) opened
    /// (as [`load`](Self::load)).
    pub fn from_detected(
        fmt: crate::TraceFormat,
        r: crate::convert::Sniffed,
        name: &str,
    ) -> Result<Self> {
        if fmt.kind != crate::TraceKind::Routing {
            return Err(TraceError::usage(
                name,
                format!("expected a routing trace, found a {fmt}"),
            ));
        }
        match fmt.encoding {
            crate::Encoding::Binary => Self::read_binary(r, name),
            crate::Encoding::Text => Self::read_text(BufReader::with_capacity(1 << 16, r), name),
        }
    }

    /// Save in the encoding chosen by the extension (`.wnrt` binary,
    /// `.jsonl` text) unless `encoding` is given.
    pub fn save(&self, path: &Path, encoding: Option<crate::Encoding>) -> Result<()> {
        let name = path_name(path);
        let enc = match encoding {
            Some(e) => e,
            None => crate::convert::encoding_for_path(path, crate::TraceKind::Routing)?,
        };
        crate::convert::write_file(path, |w| match enc {
            crate::Encoding::Binary => self.write_binary(w, &name),
            crate::Encoding::Text => self.write_text(w, &name),
        })
    }

    /// Read the binary encoding (whole trace).
    pub fn read_binary<R: Read>(r: R, name: &str) -> Result<Self> {
        let mut rd = RoutingReader::with_name(r, name)?;
        let meta = rd.meta().clone();
        let requests = rd.by_ref().collect::<Result<Vec<_>>>()?;
        Ok(RoutingTrace { meta, requests })
    }

    /// Write the binary encoding (validating it).
    pub fn write_binary<W: Write>(&self, w: W, name: &str) -> Result<()> {
        let mut wr = RoutingWriter::with_name(w, &self.meta, name)?;
        for r in &self.requests {
            wr.write(r)?;
        }
        wr.finish()?;
        Ok(())
    }

    /// Read the text encoding (generic JSONL, header line optional).
    pub fn read_text<R: BufRead>(r: R, name: &str) -> Result<Self> {
        crate::import::import_generic_reader(r, name, &crate::import::ImportOptions::default())
    }

    /// Write the text encoding: header line, then one line per request.
    pub fn write_text<W: Write>(&self, mut w: W, name: &str) -> Result<()> {
        self.validate(name)?;
        let header = TextHeader {
            wafernoc_routing_trace: TEXT_FORMAT_VERSION,
            meta: &self.meta,
        };
        write_json_line(&mut w, &header, name, Location::Line(1))?;
        let k = usize::from(self.meta.top_k);
        for (i, r) in self.requests.iter().enumerate() {
            write_json_line(
                &mut w,
                &TextRequest { req: r, k },
                name,
                Location::Line(i as u64 + 2),
            )?;
        }
        w.flush()
            .map_err(|e| TraceError::io(name, Location::File, e))
    }
}

/// Key of the text header object; its value is the format version.
pub const TEXT_HEADER_KEY: &str = "wafernoc_routing_trace";

#[derive(Serialize)]
struct TextHeader<'a> {
    wafernoc_routing_trace: u16,
    #[serde(flatten)]
    meta: &'a RoutingMeta,
}

/// Serializes a flat slice as a list of `k`-element lists.
struct Chunked<'a, T>(&'a [T], usize);

impl<T: Serialize> Serialize for Chunked<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.chunks(self.1.max(1)))
    }
}

struct TextRequest<'a> {
    req: &'a Request,
    k: usize,
}

impl Serialize for TextRequest<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let k = self.k;
        let toks = &self.req.tokens;
        let has_w = toks.iter().any(|t| t.weights.is_some());
        let mut m = s.serialize_map(Some(if has_w { 3 } else { 2 }))?;
        m.serialize_entry("request", &self.req.id)?;
        struct Experts<'a>(&'a [TokenRouting], usize);
        impl Serialize for Experts<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|t| Chunked(&t.experts, self.1)))
            }
        }
        struct Weights<'a>(&'a [TokenRouting], usize);
        impl Serialize for Weights<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_seq(
                    self.0
                        .iter()
                        .map(|t| t.weights.as_deref().map(|w| Chunked(w, self.1))),
                )
            }
        }
        m.serialize_entry("experts", &Experts(toks, k))?;
        if has_w {
            m.serialize_entry("weights", &Weights(toks, k))?;
        }
        m.end()
    }
}

/// Streaming writer of binary routing traces (one record per request).
/// Requests are validated as they are written. Call
/// [`finish`](Self::finish): a file without the end marker reads as
/// truncated.
pub struct RoutingWriter<W: Write> {
    rec: RecordWriter<W>,
    validator: RequestValidator,
    file: String,
}

impl<W: Write> RoutingWriter<W> {
    /// Start a trace on `w` (wrap files in a `BufWriter`).
    pub fn new(w: W, meta: &RoutingMeta) -> Result<Self> {
        Self::with_name(w, meta, STREAM_NAME)
    }

    /// Like [`new`](Self::new), naming the output in error messages.
    pub fn with_name(w: W, meta: &RoutingMeta, name: impl Into<String>) -> Result<Self> {
        let file = name.into();
        let validator = RequestValidator::new(meta)
            .map_err(|m| TraceError::invalid(&file, Location::Header, m))?;
        let rec = codec::create(w, &file, &ROUTING_MAGIC, meta)?;
        Ok(RoutingWriter {
            rec,
            validator,
            file,
        })
    }

    /// Validate and append one request.
    pub fn write(&mut self, req: &Request) -> Result<()> {
        let loc = Location::Record(self.rec.count());
        self.validator
            .check(req)
            .map_err(|m| TraceError::invalid(&self.file, loc, m))?;
        self.rec.write(req, &self.file)
    }

    /// Write the end-of-stream marker, flush, and return the writer.
    pub fn finish(self) -> Result<W> {
        self.rec.finish(&self.file)
    }
}

impl RoutingWriter<BufWriter<File>> {
    /// Create (truncate) `path` and start a binary routing trace in it.
    pub fn create(path: &Path, meta: &RoutingMeta) -> Result<Self> {
        let name = path_name(path);
        let f = File::create(path).map_err(|e| TraceError::io(&name, Location::File, e))?;
        Self::with_name(BufWriter::new(f), meta, name)
    }
}

/// Streaming reader of binary routing traces: reads and checks the header
/// on construction, then yields validated requests. After the first error
/// the iterator ends.
pub struct RoutingReader<R: Read> {
    rec: RecordReader<R>,
    meta: RoutingMeta,
    validator: RequestValidator,
    file: String,
    done: bool,
}

impl<R: Read> RoutingReader<R> {
    /// Read the header from `r`. The reader buffers its input itself (see
    /// [`PacketTraceReader::new`](crate::PacketTraceReader::new)).
    pub fn new(r: R) -> Result<Self> {
        Self::with_name(r, STREAM_NAME)
    }

    /// Like [`new`](Self::new), naming the input in error messages.
    pub fn with_name(r: R, name: impl Into<String>) -> Result<Self> {
        let file = name.into();
        let (meta, rec): (RoutingMeta, _) = codec::open(
            r,
            &file,
            &ROUTING_MAGIC,
            "wafernoc binary routing trace (WNOCRTE)",
        )?;
        let validator = RequestValidator::new(&meta)
            .map_err(|m| TraceError::invalid(&file, Location::Header, m))?;
        Ok(RoutingReader {
            rec,
            meta,
            validator,
            file,
            done: false,
        })
    }

    /// The trace metadata.
    pub fn meta(&self) -> &RoutingMeta {
        &self.meta
    }

    fn next_inner(&mut self) -> Result<Option<Request>> {
        let n = self.rec.count();
        match self.rec.next::<Request>(&self.file)? {
            None => Ok(None),
            Some(req) => {
                self.validator
                    .check(&req)
                    .map_err(|m| TraceError::invalid(&self.file, Location::Record(n), m))?;
                Ok(Some(req))
            }
        }
    }
}

impl RoutingReader<File> {
    /// Open a binary routing trace file.
    pub fn open(path: &Path) -> Result<Self> {
        let (r, name) = open_file(path)?;
        Self::with_name(r, name)
    }
}

impl<R: Read> Iterator for RoutingReader<R> {
    type Item = Result<Request>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.next_inner();
        fused(&mut self.done, step)
    }
}

/// Text header as read (all fields required).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextHeaderIn {
    #[allow(dead_code)]
    pub(crate) wafernoc_routing_trace: u16,
    pub(crate) model: String,
    pub(crate) source: String,
    pub(crate) license: String,
    pub(crate) num_experts: u16,
    pub(crate) top_k: u16,
    pub(crate) num_layers: u16,
    pub(crate) phase: Phase,
}
