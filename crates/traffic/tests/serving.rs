//! Serving runs with balancing and migration (crate::serving): the
//! non-invasive engine leaves the collectives' times alone, the blocking one
//! costs time, balancing lowers the load ratio, and runs are deterministic.

use wafernoc_moe::{
    AllToAllMode, BalancePolicy, BalancerConfig, ComputeModel, DieSpec, Mapping, MoeModel,
    ParallelPlan, PredictorKind, ProjectionAttention, WaferSpec,
};
use wafernoc_traffic::collective::CollectiveError;
use wafernoc_traffic::collective::NocParams;
use wafernoc_traffic::serving::{
    draw_serving, run_serving, DriftingZipf, LayerRouting, MigrationEngine, RoutingFeed,
    ServingResult, ServingSpec, DEFAULT_MIGRATION_WINDOW_PACKETS,
};

/// A small model so that a copy (3 * 512 * 512 B = 786 KB, 3072 flits)
/// finishes within a few iterations.
fn small_model() -> MoeModel {
    MoeModel {
        name: "small".into(),
        hidden: 512,
        experts: 16,
        top_k: 2,
        expert_ffn: 512,
        moe_layers: 2,
        shared_experts: 0,
        dispatch_bytes_per_elem: 1,
        combine_bytes_per_elem: 2,
        param_bytes: 1.0,
        kv_bytes_per_token: 0,
        kv_heads: 1,
        alternate_sliding_window: 0,
        score_flops_per_context_token: 0,
        max_context_tokens: 0,
    }
}

fn spec(policy: BalancePolicy, migration: MigrationEngine) -> ServingSpec {
    ServingSpec {
        wafer: WaferSpec::single(4, 4),
        die: DieSpec::default(),
        model: small_model(),
        plan: ParallelPlan::new(4, 4, Mapping::er()),
        noc: NocParams::default(),
        alltoall: AllToAllMode::Confined,
        balancer: BalancerConfig {
            policy,
            ..BalancerConfig::default()
        },
        predictor: PredictorKind::default(),
        migration,
        compute: ComputeModel::default(),
        attention: ProjectionAttention::default(),
        iterations: 10,
        layers: 2,
        migration_window_packets: DEFAULT_MIGRATION_WINDOW_PACKETS,
        reference: true,
    }
}

fn feed() -> DriftingZipf {
    DriftingZipf {
        experts: 16,
        top_k: 2,
        s: 1.2,
        tokens_per_group: 32,
        drift_every: 5,
        seed: 7,
    }
}

fn run(s: &ServingSpec) -> ServingResult {
    run_serving(s, &mut feed(), &mut |_, _| {}).unwrap()
}

/// A feed whose batch grows in one iteration (a trace's can).
struct Growing(DriftingZipf);

impl RoutingFeed for Growing {
    fn layer(
        &mut self,
        iteration: usize,
        layer: usize,
        dp: usize,
    ) -> Result<LayerRouting, CollectiveError> {
        let mut r = self.0.layer(iteration, layer, dp)?;
        if iteration == 3 {
            r.tokens_per_group *= 100;
        }
        Ok(r)
    }
}

/// The KV cache is checked against the largest batch of the run, before
/// anything is simulated: 32 tokens per group fit, 3200 do not.
#[test]
fn kv_cache_is_checked_at_the_largest_batch() {
    let mut s = spec(BalancePolicy::None, MigrationEngine::NonInvasive);
    // 1 MB per token and layer over 4 TP members, 2 layers, 1000 tokens
    // of context: 32 tokens per group take 16 GB per die, 3200 take 1.6 TB.
    s.model.kv_bytes_per_token = 1 << 20;
    s.model.kv_heads = 4;
    s.attention.context_tokens = 1000;
    let (_, routing) = draw_serving(&s, &mut feed()).unwrap();
    assert_eq!(routing.len(), 10);
    let e = draw_serving(&s, &mut Growing(feed())).unwrap_err();
    assert_eq!(e.parameter(), Some("context"), "{e}");
    assert!(e.to_string().contains("3200 tokens per DP group"), "{e}");
}

#[test]
fn non_invasive_keeps_collective_times() {
    let r = run(&spec(BalancePolicy::Topology, MigrationEngine::NonInvasive));
    let s = &r.summary;
    assert!(s.migrations_planned > 0, "{s:?}");
    assert!(s.migrations_completed > 0, "{s:?}");
    assert!(s.migration_byte_hops > 0);
    // Migration flits were really in the network during the phases.
    let mig: u64 = r.link_flits.attention_migration.iter().sum::<u64>()
        + r.link_flits.moe_migration.iter().sum::<u64>();
    assert!(mig > 0);
    let refs = r.reference_rows.as_ref().expect("reference run");
    for (a, b) in r.rows.iter().zip(refs) {
        for (x, y, what) in [
            (a.allreduce_ns, b.allreduce_ns, "allreduce"),
            (a.dispatch_ns, b.dispatch_ns, "dispatch"),
            (a.combine_ns, b.combine_ns, "combine"),
        ] {
            assert!(
                (x - y).abs() <= 0.01 * y,
                "iteration {} {what}: {x} ns with migration, {y} ns without",
                a.iteration
            );
        }
        // Same decisions, same replicas live at the same points.
        assert_eq!(a.migrations_planned, b.migrations_planned);
        assert_eq!(a.live_replicas, b.live_replicas);
        assert_eq!(a.max_over_mean_load, b.max_over_mean_load);
    }
    assert!(s.max_phase_deviation.unwrap() <= 0.01);
}

/// The control: the same run with migration flits competing as equals
/// (`migration_priority = 1`) does delay the collectives, so the check above
/// can fail.
#[test]
fn equal_priority_migration_is_invasive() {
    let mut s = spec(BalancePolicy::Topology, MigrationEngine::NonInvasive);
    s.noc.migration_priority = 1;
    let r = run(&s);
    let dev = r.summary.max_phase_deviation.unwrap();
    assert!(dev > 0.01, "largest phase deviation {dev}");
}

#[test]
fn blocking_adds_time_and_balancing_helps() {
    let none = run(&spec(BalancePolicy::None, MigrationEngine::Blocking));
    assert_eq!(none.summary.migrations_planned, 0);
    assert_eq!(none.summary.critical_path_added_ns, Some(0.0));
    let b = run(&spec(BalancePolicy::Topology, MigrationEngine::Blocking));
    assert!(b.summary.migrations_completed > 0);
    assert!(
        b.summary.critical_path_added_ns.unwrap() > 0.0,
        "{:?}",
        b.summary
    );
    let stall: f64 = b.rows.iter().map(|r| r.migration_stall_ns).sum();
    assert_eq!(Some(stall), b.summary.critical_path_added_ns);
    // Replicas spread the hot experts: lower max/mean load than no balancing.
    assert!(
        b.summary.mean_max_over_mean_load < none.summary.mean_max_over_mean_load,
        "balanced {} vs none {}",
        b.summary.mean_max_over_mean_load,
        none.summary.mean_max_over_mean_load
    );
}

#[test]
fn topology_targets_move_fewer_byte_hops() {
    let g = run(&spec(BalancePolicy::Greedy, MigrationEngine::Blocking));
    let t = run(&spec(BalancePolicy::Topology, MigrationEngine::Blocking));
    let per_copy = |r: &ServingResult| {
        r.summary.migration_byte_hops as f64 / r.summary.migration_bytes.max(1) as f64
    };
    assert!(
        per_copy(&t) < per_copy(&g),
        "topology {} hops per byte, greedy {}",
        per_copy(&t),
        per_copy(&g)
    );
}

#[test]
fn deterministic() {
    let s = spec(BalancePolicy::Topology, MigrationEngine::NonInvasive);
    assert_eq!(run(&s), run(&s));
}

#[test]
fn bad_specs_are_named() {
    let mut s = spec(BalancePolicy::Topology, MigrationEngine::NonInvasive);
    s.iterations = 0;
    let e = run_serving(&s, &mut feed(), &mut |_, _| {}).unwrap_err();
    assert_eq!(e.parameter(), Some("iterations"), "{e}");
    let mut s = spec(BalancePolicy::Topology, MigrationEngine::NonInvasive);
    s.model.experts = 24;
    let e = run_serving(&s, &mut feed(), &mut |_, _| {}).unwrap_err();
    assert!(
        e.to_string().contains("multiple of the device count"),
        "{e}"
    );
    let mut f = feed();
    f.drift_every = 0;
    let s = spec(BalancePolicy::Topology, MigrationEngine::NonInvasive);
    let e = run_serving(&s, &mut f, &mut |_, _| {}).unwrap_err();
    assert_eq!(e.parameter(), Some("drift_every"), "{e}");
}
