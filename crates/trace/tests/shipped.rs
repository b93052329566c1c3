//! The traces shipped in `traces/` load, have the documented shape, and give
//! the statistics quoted in their READMEs and in docs/traces.md.

use std::path::PathBuf;

use wafernoc_trace::{
    bench, convert, detect_format, stats, Batching, Encoding, PacketReader, PacketRecord, Phase,
    RoutingTrace, TraceKind,
};

fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../traces")
}

#[test]
fn gpt_oss_decode_trace() {
    let t = RoutingTrace::load(&traces_dir().join("gpt-oss-20b/decode_128req.wnrt")).unwrap();
    assert_eq!(t.meta.model, "openai/gpt-oss-20b");
    assert_eq!(
        (t.meta.num_experts, t.meta.top_k, t.meta.num_layers),
        (32, 4, 24)
    );
    assert_eq!(t.meta.phase, Phase::Decode);
    assert_eq!(t.requests.len(), 128);
    assert_eq!(t.num_tokens(), 38_439);
    let s = stats(&t, Batching::Continuous { slots: 64 }).unwrap();
    assert_eq!(s.iterations, 982);
    assert!(
        (s.mean_imbalance - 3.8232).abs() < 1e-4,
        "{}",
        s.mean_imbalance
    );
    let c = s.consecutive_load_corr.unwrap();
    assert!((c - 0.7628).abs() < 1e-4, "{c}");
}

#[test]
fn esft_prefill_trace() {
    let t = RoutingTrace::load(&traces_dir().join("deepseek-esft/intent.wnrt")).unwrap();
    assert_eq!(
        (t.meta.num_experts, t.meta.top_k, t.meta.num_layers),
        (64, 6, 26)
    );
    assert_eq!(t.meta.phase, Phase::Prefill);
    assert_eq!(t.requests.len(), 127);
    assert_eq!(t.num_tokens(), 8_222);
    assert!(t
        .requests
        .iter()
        .all(|r| r.tokens.iter().all(|k| k.weights.is_some())));
    let s = stats(&t, Batching::default_for(t.meta.phase)).unwrap();
    assert_eq!(s.iterations, 17);
    assert!(
        (s.mean_imbalance - 3.9157).abs() < 1e-4,
        "{}",
        s.mean_imbalance
    );
    let c = s.consecutive_load_corr.unwrap();
    assert!((c - 0.9573).abs() < 1e-4, "{c}");
}

#[test]
fn packet_example_encodings_agree() {
    let dir = traces_dir().join("examples");
    let read = |name: &str| -> Vec<PacketRecord> {
        PacketReader::open(&dir.join(name))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let a = read("packets_small.jsonl");
    let b = read("packets_small.wnpt");
    assert_eq!(a.len(), 11);
    assert_eq!(a, b);
    let f = detect_format(&dir.join("packets_small.wnpt")).unwrap();
    assert_eq!((f.kind, f.encoding), (TraceKind::Packet, Encoding::Binary));
}

#[test]
fn convert_routing_text_and_back_is_identical() {
    let src = traces_dir().join("deepseek-esft/intent.wnrt");
    let tmp = std::env::temp_dir().join(format!("wafernoc-shipped-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let text = tmp.join("intent.jsonl");
    let back = tmp.join("intent.wnrt");
    convert(&src, &text, None).unwrap();
    convert(&text, &back, None).unwrap();
    assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&back).unwrap());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn bench_runs() {
    let b = bench::bench_decode(2_000).unwrap();
    assert_eq!(b.records, 2_000);
    assert!(b.binary_records_per_sec > 0.0 && b.text_records_per_sec > 0.0);
}
