//! Turning a routing trace into serving iterations.
//!
//! # Continuous batching (decode traces)
//!
//! There are `B` slots, numbered `0..B`.
//!
//! 1. Before iteration 0, slot `s` takes request `s` (file order) for
//!    `s < min(B, requests)`; other slots stay empty.
//! 2. In every iteration each occupied slot, in slot order, contributes the
//!    next token of its request (token 0 first).
//! 3. At the end of an iteration, every request that has now contributed all
//!    its tokens frees its slot, and the freed slots — in slot order — take
//!    the next requests in file order. A request that enters a slot this way
//!    contributes its first token in the **next** iteration, never in the
//!    one in which its predecessor finished.
//! 4. Iteration stops when every slot is empty.
//!
//! # Chunked prefill (prefill traces)
//!
//! The tokens of all requests are concatenated in file order (request by
//! request, token by token) and cut into consecutive chunks of `C` tokens;
//! the last chunk may be shorter. A chunk may span several requests.
//!
//! Both schedules hold only `O(B)` (resp. `O(C)`) state besides the trace.

use crate::error::{Result, TraceError};
use crate::routing::{Phase, RoutingTrace};

/// Default number of decode slots.
pub const DEFAULT_SLOTS: usize = 64;
/// Default prefill chunk size in tokens.
pub const DEFAULT_CHUNK: usize = 512;

/// How requests are grouped into iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// Continuous batching with this many slots (decode).
    Continuous {
        /// Number of slots `B >= 1`.
        slots: usize,
    },
    /// Chunked prefill with this many tokens per iteration.
    Chunked {
        /// Chunk size `C >= 1`.
        chunk: usize,
    },
}

impl Batching {
    /// The default schedule for a phase: 64 slots for decode, 512-token
    /// chunks for prefill.
    pub fn default_for(phase: Phase) -> Self {
        match phase {
            Phase::Decode => Batching::Continuous {
                slots: DEFAULT_SLOTS,
            },
            Phase::Prefill => Batching::Chunked {
                chunk: DEFAULT_CHUNK,
            },
        }
    }
}

impl std::fmt::Display for Batching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Batching::Continuous { slots } => write!(f, "continuous batching, {slots} slots"),
            Batching::Chunked { chunk } => write!(f, "chunked prefill, {chunk} tokens per chunk"),
        }
    }
}

/// One token of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenRef {
    /// The request's id ([`crate::Request::id`]).
    pub request_id: u32,
    /// The request's position in [`RoutingTrace::requests`].
    pub request_index: usize,
    /// Token index within the request.
    pub token: usize,
}

/// The tokens processed together in one serving iteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iteration {
    /// 0-based iteration number.
    pub index: usize,
    /// Tokens in slot order (continuous) or sequence order (chunked).
    pub tokens: Vec<TokenRef>,
}

impl Iteration {
    /// The `top_k` expert ids of every token of this iteration in `layer`.
    /// `trace` must be the (validated) trace the iteration came from.
    pub fn experts<'a>(
        &'a self,
        trace: &'a RoutingTrace,
        layer: usize,
    ) -> impl Iterator<Item = &'a [u16]> + 'a {
        let k = usize::from(trace.meta.top_k);
        self.tokens
            .iter()
            .map(move |t| trace.requests[t.request_index].tokens[t.token].layer(layer, k))
    }

    /// All expert ids of this iteration in `layer`, token by token
    /// (`tokens.len() * top_k` ids).
    pub fn layer_experts(&self, trace: &RoutingTrace, layer: usize) -> Vec<u16> {
        self.experts(trace, layer).flatten().copied().collect()
    }

    /// Load of every expert in `layer`: how many token copies are routed to
    /// it. `loads` is resized to `num_experts`.
    pub fn loads_into(&self, trace: &RoutingTrace, layer: usize, loads: &mut Vec<u32>) {
        loads.clear();
        loads.resize(usize::from(trace.meta.num_experts), 0);
        for ids in self.experts(trace, layer) {
            for &e in ids {
                loads[usize::from(e)] += 1;
            }
        }
    }
}

enum State {
    Continuous {
        slots: Vec<Option<(usize, usize)>>,
        next_request: usize,
        started: bool,
    },
    Chunked {
        chunk: usize,
        request: usize,
        token: usize,
    },
}

/// Iterator over the [`Iteration`]s of a trace; see [`iterations`].
pub struct Iterations<'a> {
    trace: &'a RoutingTrace,
    state: State,
    index: usize,
}

/// Schedule `trace` into iterations. Errors if `slots` or `chunk` is 0.
/// The trace should be validated (every request has at least one token);
/// an empty request is skipped rather than occupying a slot.
pub fn iterations(trace: &RoutingTrace, batching: Batching) -> Result<Iterations<'_>> {
    let state = match batching {
        Batching::Continuous { slots: 0 } | Batching::Chunked { chunk: 0 } => {
            return Err(TraceError::usage(
                "batching",
                "slots and chunk size must be >= 1",
            ))
        }
        Batching::Continuous { slots } => State::Continuous {
            // Slot s is only ever taken when slots 0..s are busy, so slots
            // beyond the request count stay empty: not allocating them keeps
            // the schedule identical and `--slots 1000000000` cheap.
            slots: vec![None; slots.min(trace.requests.len())],
            next_request: 0,
            started: false,
        },
        Batching::Chunked { chunk } => State::Chunked {
            chunk,
            request: 0,
            token: 0,
        },
    };
    Ok(Iterations {
        trace,
        state,
        index: 0,
    })
}

impl Iterator for Iterations<'_> {
    type Item = Iteration;

    fn next(&mut self) -> Option<Iteration> {
        let reqs = &self.trace.requests;
        let tokens = match &mut self.state {
            State::Continuous {
                slots,
                next_request,
                started,
            } => {
                let refill = |slots: &mut Vec<Option<(usize, usize)>>, next: &mut usize| {
                    for s in slots.iter_mut().filter(|s| s.is_none()) {
                        while *next < reqs.len() && reqs[*next].tokens.is_empty() {
                            *next += 1;
                        }
                        if *next < reqs.len() {
                            *s = Some((*next, 0));
                            *next += 1;
                        }
                    }
                };
                if !*started {
                    *started = true;
                    refill(slots, next_request);
                }
                let mut toks = Vec::with_capacity(slots.len());
                for s in slots.iter_mut() {
                    if let Some((r, t)) = s {
                        toks.push(TokenRef {
                            request_id: reqs[*r].id,
                            request_index: *r,
                            token: *t,
                        });
                        *t += 1;
                        if *t >= reqs[*r].tokens.len() {
                            *s = None;
                        }
                    }
                }
                refill(slots, next_request);
                toks
            }
            State::Chunked {
                chunk,
                request,
                token,
            } => {
                // Not `with_capacity(chunk)`: the chunk size is user input.
                let mut toks = Vec::new();
                while toks.len() < *chunk && *request < reqs.len() {
                    let n = reqs[*request].tokens.len();
                    if *token >= n {
                        *request += 1;
                        *token = 0;
                        continue;
                    }
                    toks.push(TokenRef {
                        request_id: reqs[*request].id,
                        request_index: *request,
                        token: *token,
                    });
                    *token += 1;
                }
                toks
            }
        };
        if tokens.is_empty() {
            return None;
        }
        let it = Iteration {
            index: self.index,
            tokens,
        };
        self.index += 1;
        Some(it)
    }
}
