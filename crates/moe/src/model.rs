//! MoE model shapes and the public presets.
//!
//! Only what the network and the roofline need: hidden size, routed experts,
//! top-k, expert FFN width, MoE layer count and element sizes. Shared experts
//! are recorded but not modelled (they run on every device without any
//! all-to-all, so they add the same compute everywhere and no traffic).

use serde::{Deserialize, Serialize};

use crate::error::{nonzero, positive, MoeError, Result};

/// Default bytes per dispatched activation element: 1 (FP8), as DeepSeek-V3
/// dispatches (and as the MoEntwine domain note fixes).
pub const DEFAULT_DISPATCH_BYTES_PER_ELEM: u32 = 1;

/// Default bytes per combined activation element: 2 (BF16): expert outputs are
/// returned at full precision before the weighted sum.
pub const DEFAULT_COMBINE_BYTES_PER_ELEM: u32 = 2;

/// Default bytes per expert weight parameter: 1 (FP8).
///
/// Reason: we model FP8 serving, consistent with FP8 dispatch; DeepSeek-V3 is
/// released in FP8 and FP8 expert weights are the usual serving format on
/// B200-class parts. One precision for every preset keeps cross-model
/// comparisons about the architecture, not about the checkpoint format.
/// GPT-OSS ships MXFP4 experts (4.25 bits, about 0.53 B per parameter) and the
/// others ship BF16 (2 B): set the field to model those.
pub const DEFAULT_PARAM_BYTES: f64 = 1.0;

/// Shape of an MoE model, as far as wafernoc needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeModel {
    /// Canonical name (the preset's name, or anything for a custom model).
    pub name: String,
    /// Hidden size H.
    pub hidden: usize,
    /// Routed experts E per MoE layer.
    pub experts: usize,
    /// Experts chosen per token.
    pub top_k: usize,
    /// Intermediate (FFN) width F of one routed expert.
    pub expert_ffn: usize,
    /// MoE layers (dense layers excluded).
    pub moe_layers: usize,
    /// Shared (always-on) experts; recorded, not modelled.
    #[serde(default)]
    pub shared_experts: usize,
    /// Bytes per element of a dispatched token. Default
    /// [`DEFAULT_DISPATCH_BYTES_PER_ELEM`].
    #[serde(default = "default_dispatch")]
    pub dispatch_bytes_per_elem: u32,
    /// Bytes per element of a combined token. Default
    /// [`DEFAULT_COMBINE_BYTES_PER_ELEM`].
    #[serde(default = "default_combine")]
    pub combine_bytes_per_elem: u32,
    /// Bytes per expert weight parameter. Default [`DEFAULT_PARAM_BYTES`].
    #[serde(default = "default_param")]
    pub param_bytes: f64,
    /// KV-cache bytes that one token of context adds to one layer: K and V
    /// of every KV head, or MLA's compressed latent and its rope key, at
    /// BF16. Default 0: the KV cache is not modelled (a custom model that
    /// leaves it out).
    #[serde(default)]
    pub kv_bytes_per_token: u64,
    /// Ways the KV cache splits over the members of a TP group: the KV
    /// heads (1 for MLA, whose one latent every head reads). A TP degree
    /// above it replicates the cache. Default 1.
    #[serde(default = "default_kv_heads")]
    pub kv_heads: usize,
    /// Sliding-window attention on every other layer: MoE layers 0, 2, 4,
    /// ... attend over at most this many tokens of context (GPT-OSS: 128),
    /// the others over all of it. Default 0: every layer attends over the
    /// whole context.
    #[serde(default)]
    pub alternate_sliding_window: u64,
    /// FLOPs one decoding token spends in one layer's attention per token of
    /// context it attends over, over all query heads: the QK scores and the
    /// weighted sum of V (GQA: `4 * head_dim` per query head; MLA in the
    /// absorbed form: `2 * (576 + 512)` per head). Split evenly over a TP
    /// group's members (divided by TP: exact when TP divides the query
    /// heads). Default 0: not counted.
    #[serde(default)]
    pub score_flops_per_context_token: u64,
    /// The longest context the model takes, in tokens (its `config.json`'s
    /// `max_position_embeddings`; DBRX's `max_seq_len`): a longer
    /// `context` is refused ([`MoeError::ContextTooLong`]). Default 0: no
    /// limit (a custom model that does not say).
    #[serde(default)]
    pub max_context_tokens: u64,
}

fn default_kv_heads() -> usize {
    1
}

fn default_dispatch() -> u32 {
    DEFAULT_DISPATCH_BYTES_PER_ELEM
}
fn default_combine() -> u32 {
    DEFAULT_COMBINE_BYTES_PER_ELEM
}
fn default_param() -> f64 {
    DEFAULT_PARAM_BYTES
}

/// A preset row: (name, hidden, experts, top_k, expert_ffn, moe_layers,
/// shared_experts, attention).
type PresetRow = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    AttnRow,
);

/// A preset's decode attention: the [`MoeModel`] fields of the same names.
#[derive(Clone, Copy)]
struct AttnRow {
    kv_bytes_per_token: u64,
    kv_heads: usize,
    alternate_sliding_window: u64,
    score_flops_per_context_token: u64,
    max_context_tokens: u64,
}

/// Grouped-query attention: `q` query heads over `kv` KV heads of `dim`
/// elements. K and V at BF16 (`kv * dim * 2 * 2` bytes per token and
/// layer); per query head `4 * dim` FLOPs per cached token (the QK dot
/// product and the weighted sum of V); at most `max_ctx` tokens of context.
const fn gqa(q: u64, kv: usize, dim: u64, max_ctx: u64) -> AttnRow {
    AttnRow {
        kv_bytes_per_token: kv as u64 * dim * 2 * 2,
        kv_heads: kv,
        alternate_sliding_window: 0,
        score_flops_per_context_token: q * 4 * dim,
        max_context_tokens: max_ctx,
    }
}

/// DeepSeek's MLA with `q` heads, decoded in the absorbed form: one latent
/// of `kv_lora_rank` 512 plus the decoupled rope key of 64 per token and
/// layer at BF16, read by every head; per head `2 * (576 + 512)` FLOPs per
/// cached token (scores over the latent and rope key, the weighted sum of
/// the latent); at most `max_ctx` tokens of context.
const fn mla(q: u64, max_ctx: u64) -> AttnRow {
    AttnRow {
        kv_bytes_per_token: (512 + 64) * 2,
        kv_heads: 1,
        alternate_sliding_window: 0,
        score_flops_per_context_token: q * 2 * (576 + 512),
        max_context_tokens: max_ctx,
    }
}

/// The presets, from the models' public configuration files (Hugging Face
/// `config.json` of each release); see `docs/moe.md` for the field mapping.
/// The longest context is `max_position_embeddings` (DBRX: `max_seq_len`).
const PRESETS: &[PresetRow] = &[
    // 61 layers, first_k_dense_replace = 3 -> 58 MoE layers; 1 shared expert.
    ("DeepSeek-V3", 7168, 256, 8, 2048, 58, 1, mla(128, 163_840)),
    // 60 layers, first_k_dense_replace = 1 -> 59 MoE layers; 2 shared experts.
    ("DeepSeek-V2", 5120, 160, 6, 1536, 59, 2, mla(128, 163_840)),
    // 27 layers, first_k_dense_replace = 1 -> 26 MoE layers; 2 shared experts.
    (
        "DeepSeek-V2-Lite",
        2048,
        64,
        6,
        1408,
        26,
        2,
        mla(16, 163_840),
    ),
    // Qwen3-235B-A22B: 94 layers, every layer MoE, no shared expert.
    (
        "Qwen3-235B",
        4096,
        128,
        8,
        1536,
        94,
        0,
        gqa(64, 4, 128, 40_960),
    ),
    // DBRX: 40 layers, ffn_hidden_size 10752.
    ("DBRX", 6144, 16, 4, 10752, 40, 0, gqa(48, 8, 128, 32_768)),
    // Mixtral-8x22B: 56 layers, intermediate_size 16384.
    (
        "Mixtral-8x22B",
        6144,
        8,
        2,
        16384,
        56,
        0,
        gqa(48, 8, 128, 65_536),
    ),
    // GPT-OSS-20B: 24 layers, intermediate_size 2880.
    (
        "GPT-OSS-20B",
        2880,
        32,
        4,
        2880,
        24,
        0,
        AttnRow {
            alternate_sliding_window: 128,
            ..gqa(64, 8, 64, 131_072)
        },
    ),
];

/// Normalises a name for lookup: lower case, `_` and spaces read as `-`.
fn normalise(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '_' | ' ' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl MoeModel {
    /// The canonical names of all presets, in table order.
    pub fn preset_names() -> Vec<&'static str> {
        PRESETS.iter().map(|p| p.0).collect()
    }

    /// All presets, in table order.
    pub fn presets() -> Vec<MoeModel> {
        PRESETS.iter().map(Self::from_row).collect()
    }

    fn from_row(p: &PresetRow) -> MoeModel {
        let &(name, hidden, experts, top_k, expert_ffn, moe_layers, shared_experts, attn) = p;
        MoeModel {
            name: name.to_string(),
            hidden,
            experts,
            top_k,
            expert_ffn,
            moe_layers,
            shared_experts,
            dispatch_bytes_per_elem: DEFAULT_DISPATCH_BYTES_PER_ELEM,
            combine_bytes_per_elem: DEFAULT_COMBINE_BYTES_PER_ELEM,
            param_bytes: DEFAULT_PARAM_BYTES,
            kv_bytes_per_token: attn.kv_bytes_per_token,
            kv_heads: attn.kv_heads,
            alternate_sliding_window: attn.alternate_sliding_window,
            score_flops_per_context_token: attn.score_flops_per_context_token,
            max_context_tokens: attn.max_context_tokens,
        }
    }

    /// Looks a preset up by name, case-insensitively (`_` or a space may stand
    /// for `-`). An unknown name is an error listing the valid names.
    pub fn preset(name: &str) -> Result<MoeModel> {
        let want = normalise(name);
        PRESETS
            .iter()
            .find(|p| normalise(p.0) == want)
            .map(Self::from_row)
            .ok_or_else(|| MoeError::UnknownModel {
                name: name.to_string(),
                valid: Self::preset_names().join(", "),
            })
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        nonzero("hidden", self.hidden)?;
        nonzero("experts", self.experts)?;
        nonzero("top_k", self.top_k)?;
        nonzero("expert_ffn", self.expert_ffn)?;
        nonzero("moe_layers", self.moe_layers)?;
        nonzero(
            "dispatch_bytes_per_elem",
            self.dispatch_bytes_per_elem as usize,
        )?;
        nonzero(
            "combine_bytes_per_elem",
            self.combine_bytes_per_elem as usize,
        )?;
        positive("param_bytes", self.param_bytes)?;
        nonzero("kv_heads", self.kv_heads)?;
        if self.top_k > self.experts {
            return Err(MoeError::TopKTooLarge {
                top_k: self.top_k,
                experts: self.experts,
            });
        }
        Ok(())
    }

    /// Parameters of one routed expert: `3 * H * F` (gate, up and down
    /// projections).
    pub fn expert_params(&self) -> u64 {
        3 * self.hidden as u64 * self.expert_ffn as u64
    }

    /// Bytes of one routed expert's weights: `ceil(3 * H * F * param_bytes)`.
    pub fn expert_weight_bytes(&self) -> u64 {
        (self.expert_params() as f64 * self.param_bytes).ceil() as u64
    }

    /// FLOPs to run one token through one expert: `6 * H * F` (three matrix
    /// products, 2 FLOPs per multiply-accumulate).
    pub fn expert_flops_per_token(&self) -> f64 {
        6.0 * self.hidden as f64 * self.expert_ffn as f64
    }

    /// Bytes of one dispatched token copy: `H * dispatch_bytes_per_elem`.
    pub fn dispatch_bytes_per_token(&self) -> u64 {
        self.hidden as u64 * u64::from(self.dispatch_bytes_per_elem)
    }

    /// Bytes of one combined token copy: `H * combine_bytes_per_elem`.
    pub fn combine_bytes_per_token(&self) -> u64 {
        self.hidden as u64 * u64::from(self.combine_bytes_per_elem)
    }

    /// Bytes of the TP all-reduce of one layer's attention output for a DP
    /// group of `tokens` tokens: `tokens * H * combine_bytes_per_elem` (BF16
    /// activations, the same element size as combine). The ring moves it in
    /// `2(t-1)` steps of `M/t` bytes.
    pub fn tp_allreduce_bytes(&self, tokens: u64) -> u64 {
        tokens.saturating_mul(self.combine_bytes_per_token())
    }

    /// Checks that the model takes `context` tokens of context: at most
    /// [`MoeModel::max_context_tokens`] (any, when that is 0).
    pub fn check_context(&self, context: u64) -> Result<()> {
        if self.max_context_tokens > 0 && context > self.max_context_tokens {
            return Err(MoeError::ContextTooLong {
                context,
                model: self.name.clone(),
                max: self.max_context_tokens,
            });
        }
        Ok(())
    }

    /// Tokens of a `context`-token context that MoE layer `layer` attends
    /// over: `min(context, alternate_sliding_window)` on the sliding layers
    /// (even indices), `context` elsewhere.
    pub fn attended_context(&self, layer: usize, context: u64) -> u64 {
        if self.alternate_sliding_window > 0 && layer % 2 == 0 {
            context.min(self.alternate_sliding_window)
        } else {
            context
        }
    }

    /// Attention score FLOPs one member of a TP group of `tp` spends in MoE
    /// layer `layer` when its DP group decodes `tokens` tokens with
    /// `context` tokens of context each: `tokens * attended_context *
    /// score_flops_per_context_token / tp` (the query heads split evenly).
    pub fn score_flops_per_device(
        &self,
        layer: usize,
        tokens: u64,
        context: u64,
        tp: usize,
    ) -> f64 {
        tokens as f64
            * self.attended_context(layer, context) as f64
            * self.score_flops_per_context_token as f64
            / tp.max(1) as f64
    }

    /// KV-cache bytes the fullest member of a TP group of `tp` holds for
    /// MoE layer `layer`, when its DP group decodes `tokens` tokens with
    /// `context` tokens of context each (what it reads in that layer's
    /// attention, too): `tokens * attended_context * kv_bytes_per_token *
    /// ceil(kv_heads / tp) / kv_heads`. That is `1 / min(tp, kv_heads)` of
    /// the cache when `tp` divides the heads or exceeds them (a head is then
    /// replicated), and the share of the member with the most heads
    /// otherwise (3 of 8 at TP 3).
    pub fn kv_bytes_per_device(&self, layer: usize, tokens: u64, context: u64, tp: usize) -> f64 {
        let heads = self.kv_heads.max(1);
        let share = heads.div_ceil(tp.max(1)) as f64 / heads as f64;
        tokens as f64
            * self.attended_context(layer, context) as f64
            * self.kv_bytes_per_token as f64
            * share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        let m = MoeModel::preset("deepseek-v3").unwrap();
        assert_eq!(m.name, "DeepSeek-V3");
        assert_eq!(
            (m.hidden, m.experts, m.top_k, m.expert_ffn, m.moe_layers),
            (7168, 256, 8, 2048, 58)
        );
        assert_eq!(MoeModel::preset("DEEPSEEK_V2_LITE").unwrap().moe_layers, 26);
        assert_eq!(MoeModel::preset(" gpt-oss-20b ").unwrap().expert_ffn, 2880);
        for m in MoeModel::presets() {
            m.validate().unwrap();
            assert_eq!(MoeModel::preset(&m.name).unwrap(), m);
        }
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let e = MoeModel::preset("llama").unwrap_err();
        assert_eq!(e.parameter(), "model");
        let msg = e.to_string();
        for n in MoeModel::preset_names() {
            assert!(msg.contains(n), "{msg}");
        }
    }

    #[test]
    fn sizes() {
        let m = MoeModel::preset("DeepSeek-V3").unwrap();
        assert_eq!(m.expert_weight_bytes(), 3 * 7168 * 2048);
        assert_eq!(m.dispatch_bytes_per_token(), 7168);
        assert_eq!(m.combine_bytes_per_token(), 14336);
        assert_eq!(m.tp_allreduce_bytes(3), 3 * 14336);
        let mut g = MoeModel::preset("gpt-oss-20b").unwrap();
        g.param_bytes = 4.25 / 8.0;
        assert_eq!(
            g.expert_weight_bytes(),
            (3.0 * 2880.0 * 2880.0 * 0.53125f64).ceil() as u64
        );
    }

    /// The longest context of each preset (`max_position_embeddings`,
    /// DBRX's `max_seq_len`); one token more is refused, naming the model;
    /// a custom model without a limit takes any.
    #[test]
    fn longest_context() {
        let max = |n: &str| MoeModel::preset(n).unwrap().max_context_tokens;
        assert_eq!(max("DeepSeek-V3"), 163_840);
        assert_eq!(max("DeepSeek-V2"), 163_840);
        assert_eq!(max("DeepSeek-V2-Lite"), 163_840);
        assert_eq!(max("Qwen3-235B"), 40_960);
        assert_eq!(max("DBRX"), 32_768);
        assert_eq!(max("Mixtral-8x22B"), 65_536);
        assert_eq!(max("GPT-OSS-20B"), 131_072);
        let mut m = MoeModel::preset("DBRX").unwrap();
        m.check_context(0).unwrap();
        m.check_context(32_768).unwrap();
        let e = m.check_context(32_769).unwrap_err();
        assert_eq!(e.parameter(), "context");
        assert_eq!(
            e.to_string(),
            "parameter `context` = 32769 exceeds the longest context DBRX takes, 32768 tokens"
        );
        m.max_context_tokens = 0;
        m.check_context(u64::MAX).unwrap();
    }

    #[test]
    fn kv_cache() {
        // From the public config.json files: MLA's 512 + 64 latent, GQA's
        // KV heads x head_dim x (K, V), all at 2 bytes.
        let kv = |n: &str| {
            let m = MoeModel::preset(n).unwrap();
            (m.kv_bytes_per_token, m.kv_heads, m.alternate_sliding_window)
        };
        assert_eq!(kv("DeepSeek-V3"), (1152, 1, 0));
        assert_eq!(kv("DeepSeek-V2-Lite"), (1152, 1, 0));
        assert_eq!(kv("DeepSeek-V2"), (1152, 1, 0));
        assert_eq!(kv("Qwen3-235B"), (2048, 4, 0));
        assert_eq!(kv("DBRX"), (4096, 8, 0));
        assert_eq!(kv("Mixtral-8x22B"), (4096, 8, 0));
        assert_eq!(kv("GPT-OSS-20B"), (2048, 8, 128));
        // Score FLOPs per cached token: MLA 128 (V2-Lite 16) heads x 2 x
        // (576 + 512); GQA query heads x 4 x head_dim.
        let flops = |n: &str| MoeModel::preset(n).unwrap().score_flops_per_context_token;
        assert_eq!(flops("DeepSeek-V3"), 278_528);
        assert_eq!(flops("DeepSeek-V2"), 278_528);
        assert_eq!(flops("DeepSeek-V2-Lite"), 34_816);
        assert_eq!(flops("Qwen3-235B"), 32_768);
        assert_eq!(flops("DBRX"), 24_576);
        assert_eq!(flops("Mixtral-8x22B"), 24_576);
        assert_eq!(flops("GPT-OSS-20B"), 16_384);
        let g = MoeModel::preset("GPT-OSS-20B").unwrap();
        assert_eq!(g.attended_context(0, 4096), 128);
        assert_eq!(g.attended_context(1, 4096), 4096);
        assert_eq!(g.attended_context(2, 100), 100);
        // 10 tokens x 4096 x 2048 B over min(tp, 8) members.
        assert_eq!(
            g.kv_bytes_per_device(1, 10, 4096, 1),
            10.0 * 4096.0 * 2048.0
        );
        assert_eq!(g.kv_bytes_per_device(1, 10, 4096, 4), 10.0 * 4096.0 * 512.0);
        assert_eq!(
            g.kv_bytes_per_device(1, 10, 4096, 16),
            10.0 * 4096.0 * 256.0
        );
        assert_eq!(g.kv_bytes_per_device(0, 10, 4096, 16), 10.0 * 128.0 * 256.0);
        // TP 3 over 8 heads: the fullest member holds 3 of them.
        assert_eq!(g.kv_bytes_per_device(1, 10, 4096, 3), 10.0 * 4096.0 * 768.0);
        // MLA: every TP member reads the whole latent.
        let d = MoeModel::preset("DeepSeek-V3").unwrap();
        assert_eq!(d.kv_bytes_per_device(3, 2, 1000, 16), 2.0 * 1000.0 * 1152.0);
        assert_eq!(d.kv_bytes_per_device(3, 2, 0, 16), 0.0);
    }

    #[test]
    fn validation_names_the_parameter() {
        let base = MoeModel::preset("DBRX").unwrap();
        let mut m = base.clone();
        m.hidden = 0;
        assert_eq!(m.validate().unwrap_err().parameter(), "hidden");
        let mut m = base.clone();
        m.experts = 0;
        assert_eq!(m.validate().unwrap_err().parameter(), "experts");
        let mut m = base.clone();
        m.top_k = 0;
        assert_eq!(m.validate().unwrap_err().parameter(), "top_k");
        let mut m = base.clone();
        m.top_k = 17;
        assert_eq!(m.validate().unwrap_err().parameter(), "top_k");
        let mut m = base.clone();
        m.expert_ffn = 0;
        assert_eq!(m.validate().unwrap_err().parameter(), "expert_ffn");
        let mut m = base.clone();
        m.moe_layers = 0;
        assert_eq!(m.validate().unwrap_err().parameter(), "moe_layers");
        let mut m = base.clone();
        m.dispatch_bytes_per_elem = 0;
        assert_eq!(
            m.validate().unwrap_err().parameter(),
            "dispatch_bytes_per_elem"
        );
        let mut m = base.clone();
        m.combine_bytes_per_elem = 0;
        assert_eq!(
            m.validate().unwrap_err().parameter(),
            "combine_bytes_per_elem"
        );
        let mut m = base.clone();
        m.param_bytes = 0.0;
        assert_eq!(m.validate().unwrap_err().parameter(), "param_bytes");
        let mut m = base;
        m.kv_heads = 0;
        assert_eq!(m.validate().unwrap_err().parameter(), "kv_heads");
    }
}
