//! Steady-state cost of the collector against the simulator's `large-history` tenant
//! (100 000 completed tasks over 60 days, 1 000 pending): API requests per cycle, CPU
//! time per cycle and peak RSS. Prints figures; asserts nothing about speed.
//!
//! Run: `cargo bench --bench collector` (add `-- --cycles N` to change the number of
//! steady-state cycles, default 20).
//!
//! The simulator runs on its own runtime thread; the exporter runs on a current-thread
//! runtime on the main thread, so the main thread's CPU time is the exporter's (client,
//! JSON decoding, tracker, metric updates).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sailpoint_simulator::{
    ClockMode, DEMO_CLIENT_SECRET, RequestCounts, Scenario, SimConfig, Simulator,
};
use sailpoint_task_exporter::collector::{PollOutcome, TenantPoller};
use sailpoint_task_exporter::config::{Credentials, MetricsSettings, TenantSettings};
use sailpoint_task_exporter::metrics::{Metrics, PollList};
use sailpoint_task_exporter::sailpoint::Client;

/// CPU seconds (user + system) of the calling thread, from /proc (10 ms resolution).
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn requests(c: &RequestCounts) -> u64 {
    c.api_total() + c.token
}

fn main() {
    let cycles: usize = std::env::args()
        .skip_while(|a| a != "--cycles")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("simulator runtime");
    let cfg = SimConfig::new(42).with_scenario(Scenario::LargeHistory);
    let cfg = SimConfig {
        clock: ClockMode::manual_now(),
        ..cfg
    };
    let started = Instant::now();
    let sim = Arc::new(
        sim_rt
            .block_on(Simulator::start(cfg, "127.0.0.1:0".parse().expect("addr")))
            .expect("simulator"),
    );
    let truth = sim.tasks();
    println!(
        "tenant: {} tasks ({} pending), built in {:.1?}; RSS with the simulator alone: {} MiB",
        truth.len(),
        truth.iter().filter(|t| t.is_pending()).count(),
        started.elapsed(),
        status_kib("VmRSS:") / 1024
    );
    drop(truth);

    let mut settings = TenantSettings::with_defaults(
        "bench",
        sim.base_url().parse().expect("url"),
        Credentials::ClientCredentials {
            client_id: sim.client_id().to_string(),
            client_secret: DEMO_CLIENT_SECRET.to_string().into(),
        },
    );
    settings.rate_limit.requests = 1_000_000;
    let metrics =
        Arc::new(Metrics::new(&MetricsSettings::default(), "bench", "bench").expect("metrics"));
    let tenant = metrics.tenant("bench");
    let client = Client::new(&settings, Arc::new(tenant.clone())).expect("client");
    let clock = Arc::clone(&sim);
    let mut poller =
        TenantPoller::new(&settings, client, tenant).with_clock(Arc::new(move || clock.now()));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("exporter runtime");
    let before = sim.request_count();
    let (cpu0, t0) = (thread_cpu(), Instant::now());
    rt.block_on(poller.prime()).expect("priming");
    println!(
        "priming (24 h lookback): {} requests, {:.2} s CPU, {:.2?} wall",
        requests(&sim.request_count()) - requests(&before),
        thread_cpu() - cpu0,
        t0.elapsed()
    );

    let mut total_requests = 0;
    let mut total_counted = 0;
    let mut render_bytes = 0;
    // Nothing but polls (and the simulator's clock) runs on this thread in the loop, so
    // its CPU time is the exporter's. Ground truth is not consulted here: it would cost
    // far more CPU than the polls.
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    for cycle in 0..cycles {
        // One cycle = 60 s: two pending polls and one completed poll.
        let before = sim.request_count();
        let pending = poller.tracker().pending().len();
        let mut counted = 0;
        for list in [PollList::Pending, PollList::Pending, PollList::Completed] {
            if list == PollList::Pending {
                sim.advance(Duration::from_secs(30));
            }
            if let PollOutcome::Counted(n) = rt.block_on(poller.poll(list)).expect("poll") {
                counted += n;
            }
        }
        let used = requests(&sim.request_count()) - requests(&before);
        total_requests += used;
        total_counted += counted;
        if cycle < 3 || cycle + 1 == cycles {
            render_bytes = metrics.render().len();
            println!(
                "cycle {cycle:>2}: {used} requests (2 x ceil({pending}/250) = {} for the pending list), {counted} completions counted; tracked pending {} recent {}",
                2 * pending.div_ceil(250),
                poller.tracker().pending().len(),
                poller.tracker().recent().len()
            );
        }
    }
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    println!(
        "steady state over {cycles} cycles of 60 s (2 pending + 1 completed poll each): {:.1} requests/cycle, {:.1} completions counted/cycle, {:.1} ms exporter CPU/cycle, {:.1?} wall/cycle",
        total_requests as f64 / cycles as f64,
        total_counted as f64 / cycles as f64,
        cpu * 1000.0 / cycles as f64,
        wall / cycles.max(1) as u32
    );
    let renders = 200;
    let (cpu_r, t_r) = (thread_cpu(), Instant::now());
    for _ in 0..renders {
        std::hint::black_box(metrics.render());
    }
    println!(
        "/metrics render: {render_bytes} bytes, {:.2} ms CPU each ({:.2?} wall)",
        (thread_cpu() - cpu_r) * 1000.0 / renders as f64,
        t_r.elapsed() / renders
    );
    println!(
        "peak RSS (simulator + exporter, one process): {} MiB; now {} MiB",
        status_kib("VmHWM:") / 1024,
        status_kib("VmRSS:") / 1024
    );
    drop(poller);
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim_rt.block_on(sim.shutdown());
    }
}
