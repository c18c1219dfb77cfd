//! `cargo xtask bench`: runs the pool benchmark (`benches/pool.rs`: the pool, its floors and all its
//! peers, every scenario) and the data-path benchmark (`benches/datapath.rs`) in ONE `cargo bench`
//! invocation, then writes the generated section of BENCHMARKS.md from what that run measured (machine,
//! date, load average before and after, rustc, criterion's median per block for every (scenario, peer),
//! every ratio the pool issue asks for with its reading, the retained-memory facts, the data-path A/B
//! table with and without the simulator's bookkeeping) and the chart `BENCHMARKS.svg` next to it (each
//! scenario's medians per peer, hand-written SVG text).
//!
//! The section sits between `<!-- pool-bench:begin -->` and `<!-- pool-bench:end -->`; the rest of
//! BENCHMARKS.md is left as it is. `checks` computes the issue's ratios and their readings, `chart` draws
//! the SVG.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod chart;
mod checks;

use chart::chart;
use checks::checks;

pub const USAGE: &str = "\
  bench [--no-write]
      Run the pool and data-path benchmarks in one cargo bench run (the pool,
      its floors and peers in every scenario; the data-path A/B with and
      without the simulator's bookkeeping) and write the generated section of
      BENCHMARKS.md and the chart BENCHMARKS.svg. --no-write only prints the
      section. Run it on a quiet machine: the load average is recorded.
";

/// (criterion group, what one block's lifecycle is there, what its floor is).
const SCENARIOS: [(&str, &str, &str); 4] = [
    (
        "pool_same_cpu",
        "same CPU: get + touch + free pairs on one thread",
        "per-thread `Vec` pop/push",
    ),
    (
        "pool_burst",
        "burst: 256 gets then 256 frees on one thread (more than a magazine)",
        "per-thread `Vec` pop/push",
    ),
    (
        "pool_cross_cpu",
        "cross CPU: get + touch on CPU 0; NDIS-style unlink read + free on CPU 1",
        "bare hand-off in batches of 64",
    ),
    (
        "pool_contended",
        "contended: both cores running same-CPU pairs at once",
        "per-thread `Vec` pop/push on each core",
    ),
];
const PEERS: [&str; 7] = [
    "pool",
    "floor",
    "lookaside",
    "arrayqueue",
    "mutex_vec",
    "system_ndis",
    "mimalloc_ndis",
];
const OTHER_PEERS: [&str; 5] = [
    "lookaside",
    "arrayqueue",
    "mutex_vec",
    "system_ndis",
    "mimalloc_ndis",
];
const DATAPATH: [(&str, &str); 4] = [
    (
        "exercise_round_trip",
        "the filter's transform + exact restore of one NBL, as the simulator charges it",
    ),
    (
        "exercise_round_trip_bookkeeping_both",
        "the same, each side also charged the simulator bookkeeping only the other pays",
    ),
    (
        "send_through_stack",
        "one NBL protocol -> filter -> miniport -> back, as the simulator charges it",
    ),
    (
        "send_through_stack_bookkeeping_both",
        "the same, each side also charged the simulator bookkeeping only the other pays",
    ),
];
const BEGIN: &str = "<!-- pool-bench:begin -->";
const END: &str = "<!-- pool-bench:end -->";
const SVG_NAME: &str = "BENCHMARKS.svg";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// criterion's median estimate (ns) from `<group>/<peer>/new/estimates.json`.
fn median(target: &Path, group: &str, peer: &str) -> Option<f64> {
    let text = std::fs::read_to_string(
        target
            .join("criterion")
            .join(group)
            .join(peer)
            .join("new/estimates.json"),
    )
    .ok()?;
    let at = text.find("\"median\"")?;
    let m = &text[at..];
    let key = "\"point_estimate\"";
    let i = m.find(key)? + key.len();
    let rest = m[i..].trim_start_matches([':', ' ']);
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

type Facts = Vec<(String, String)>;

fn facts(path: &Path) -> Facts {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn fact(f: &[(String, String)], key: &str) -> Option<f64> {
    f.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{model}, {cpus} CPUs, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// The 1/5/15-minute load averages from /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

type Med<'a> = &'a dyn Fn(&str, &str) -> Option<f64>;

/// What the run was: when, where, under what load.
struct RunInfo {
    date: String,
    machine: String,
    rustc: String,
    load_before: String,
    load_after: String,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let write = !args.iter().any(|a| a == "--no-write");
    if let Some(a) = args.iter().find(|a| *a != "--no-write") {
        return Err(format!("unknown argument {a:?}\n{USAGE}"));
    }
    let root = root();
    let target = target_dir(&root);
    let pool_facts = target.join("pool-bench-facts.txt");
    let dp_facts = target.join("datapath-bench-facts.txt");
    let _ = std::fs::remove_file(&pool_facts);
    let _ = std::fs::remove_file(&dp_facts);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Build first, so the load figure taken before the run is not the build's own.
    let build = Command::new(&cargo)
        .args([
            "bench", "-p", "mdlpool", "--bench", "pool", "--bench", "datapath", "--no-run",
        ])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("running cargo bench --no-run: {e}"))?;
    if !build.success() {
        return Err(format!("cargo bench --no-run failed: {build}"));
    }
    let load_before = loadavg();
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let status = Command::new(&cargo)
        .args([
            "bench", "-p", "mdlpool", "--bench", "pool", "--bench", "datapath",
        ])
        .env("MDLPOOL_BENCH_FACTS", &pool_facts)
        .env("MDLPOOL_DATAPATH_FACTS", &dp_facts)
        .current_dir(&root)
        .status()
        .map_err(|e| format!("running cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed: {status}"));
    }
    let info = RunInfo {
        date,
        machine: machine(),
        rustc: output("rustc", &["-V"]),
        load_before,
        load_after: loadavg(),
    };
    let med = |g: &str, p: &str| median(&target, g, p);
    let section = render(&info, &med, &facts(&pool_facts), &facts(&dp_facts))?;
    println!("{section}");
    if write {
        let path = root.join("BENCHMARKS.md");
        let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
        let new = match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if e > b => {
                format!("{}{}{}", &old[..b], section, &old[e + END.len()..])
            }
            _ => format!("{}\n{}\n", old.trim_end(), section),
        };
        std::fs::write(&path, new).map_err(|e| format!("writing {}: {e}", path.display()))?;
        let svg = chart(&med, &info);
        let svg_path = root.join(SVG_NAME);
        std::fs::write(&svg_path, svg)
            .map_err(|e| format!("writing {}: {e}", svg_path.display()))?;
        println!(
            "wrote the generated section of {} and {}",
            path.display(),
            svg_path.display()
        );
    }
    Ok(())
}

fn render(info: &RunInfo, med: Med, f: &Facts, dp: &Facts) -> Result<String, String> {
    let mut s = String::new();
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "n/a".into());
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "## Results (`cargo xtask bench`)\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench` from ONE `cargo bench -p mdlpool --bench pool --bench datapath` run (criterion\n\
         medians and the facts files both benchmark binaries write). Do not edit by hand. Chart: [{SVG_NAME}]({SVG_NAME})\n\
         (each scenario's median per peer, log scale).\n"
    );
    let _ = writeln!(s, "- date: {}", info.date);
    let _ = writeln!(s, "- machine: {}", info.machine);
    let _ = writeln!(
        s,
        "- load average (1/5/15 min) before the run: {}; after: {} (the machine is shared: the higher the \
         load, the noisier every figure, the cross-CPU ones most)",
        info.load_before, info.load_after
    );
    let _ = writeln!(s, "- rustc: {}", info.rustc);
    let _ = writeln!(s, "- profile: bench (release, LTO, codegen-units = 1); pool config: default (M = 32, depot limit 16, classes 64..2048)");
    let _ = writeln!(s, "- lifecycle per block: get a block whose MDL describes 128 bytes (ByteCount = 128, Next = NULL, built");
    let _ = writeln!(
        s,
        "  for nonpaged pool), write 16 bytes at its tail and read one back, free it"
    );
    let _ = writeln!(s, "- timing: per-thread CPU time (descheduled time is not charged); cross CPU: wall time of the work on");
    let _ = writeln!(
        s,
        "  each side, summed per block (the batch hand-off between the threads is not charged)"
    );
    let _ = writeln!(s, "- same CPU and burst: every peer, the floor included, runs on one spawned worker thread pinned to core 0;");
    let _ = writeln!(s, "  besides criterion's samples (one peer after the other), both scenarios run interleaved: {} rounds in which", fmt(fact(f, "interleaved_rounds")));
    let _ = writeln!(s, "  the floor and every peer run in turn, {} blocks each; the same-CPU ratios below are the medians of the", fmt(fact(f, "interleaved_round_blocks")));
    let _ = writeln!(s, "  per-round ratios (a few-ns loop's speed on a shared machine drifts between seconds; a round's ratio does not)");
    let _ = writeln!(s, "- the pool runs on the host platform without its test-only CPU-slot occupancy check (the kernel has none)\n");

    let _ = writeln!(s, "### Pool (`benches/pool.rs`): median ns per block\n");
    let _ = write!(s, "| scenario | floor is |");
    for p in PEERS {
        let _ = write!(s, " {p} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|---|{}", "---:|".repeat(PEERS.len()));
    for (g, what, floor) in SCENARIOS {
        let _ = write!(s, "| {what} | {floor} |");
        for p in PEERS {
            let _ = match med(g, p) {
                Some(v) if p == "pool" => write!(s, " **{v:.2}** |"),
                Some(v) => write!(s, " {v:.2} |"),
                None => write!(s, " n/a |"),
            };
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "\nPeers: `floor` = the cheapest thing doing the scenario's unavoidable work (see \"floor is\"; cross CPU:");
    let _ = writeln!(s, "pre-built blocks written on CPU 0 as an allocation does, handed to CPU 1 in the benchmark's batches of 64,");
    let _ = writeln!(s, "unlinked and freed there with one write, returned to CPU 0 in the same batches; no per-CPU lookup, class");
    let _ = writeln!(s, "lookup, counters or checks); `lookaside` = one shared Windows lookaside model (tagged Treiber stack, depth");
    let _ = writeln!(s, "cap 256, plain counters on the head's line); `arrayqueue` = crossbeam `ArrayQueue`; `mutex_vec` =");
    let _ = writeln!(s, "`Mutex<Vec>`; `system_ndis` / `mimalloc_ndis` = NDIS's default allocator shape (allocate MDL + data and");
    let _ = writeln!(
        s,
        "build the MDL on every request, free it on every free) on the system allocator / on mimalloc.\n"
    );
    let _ = writeln!(s, "IRQL: on a host the pool's raise to DISPATCH_LEVEL and lower are free (threads stand for CPUs), so none of");
    let _ = writeln!(s, "the figures above include them. In the kernel each allocation and each free adds one `KeRaiseIrql` +");
    let _ = writeln!(s, "`KeLowerIrql` pair, which on x64 the WDK headers inline as a read and two writes of CR8 (DESIGN.md §6 /");
    let _ = writeln!(s, "ndis-contract.md §6: \"On x64 all of them are CR8 accesses inlined by the headers\"; `crates/ndis-sys/src/irql.rs`);");
    let _ = writeln!(s, "MOV to CR8 is the one control-register write the Intel SDM (Vol. 3A, \"Serializing Instructions\") exempts");
    let _ = writeln!(s, "from serialization, so it does not drain the pipeline. Its cost is not measured here (a user-mode CR8 access");
    let _ = writeln!(s, "traps) and is the same for every peer that runs at DISPATCH_LEVEL, as NDIS's own lookaside users do.\n");

    let cs = checks(med, f)?;
    let _ = writeln!(
        s,
        "Ratios the pool issue asks for (from the medians above; the same-CPU ones from the interleaved rounds,\n\
         where the floor and every peer run in turn on one thread, so each ratio compares like with like in time):\n"
    );
    let _ = writeln!(
        s,
        "| ratio | measured | required | met |\n|---|---:|---|---|"
    );
    for c in &cs {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {} | {} |",
            c.name,
            c.value,
            c.required,
            if c.met { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(s, "\nReading each ratio (computed from this run):\n");
    for c in &cs {
        let _ = writeln!(s, "- {} = {:.2}: {}.", c.name, c.value, c.reading);
    }

    let cap = fact(f, "retention_cap_bytes");
    let max = fact(f, "max_retained_bytes");
    let after_burst = fact(f, "retained_after_burst_bytes");
    let after_trim = fact(f, "retained_after_idle_trim_bytes");
    let bound = fact(f, "working_set_bound_bytes");
    let _ = writeln!(
        s,
        "\nRetained memory (the pool benchmark binary's own snapshots):\n"
    );
    let _ = writeln!(s, "| fact | bytes | bound | within |\n|---|---:|---:|---|");
    let _ = writeln!(
        s,
        "| most retained by the benchmarked pool after any scenario (same CPU, burst, cross CPU, contended) | {} | cap {} | {} |",
        fmt(max),
        fmt(cap),
        yes(max.zip(cap).map(|(a, b)| a <= b))
    );
    let _ = writeln!(s, "| retained after a 4096-block burst allocated on CPU 0 and freed on CPU 1 | {} | cap {} | {} |", fmt(after_burst), fmt(cap), yes(after_burst.zip(cap).map(|(a, b)| a <= b)));
    let _ = writeln!(
        s,
        "| retained after two idle trims (released {} then {} bytes) | {} | working set {} | {} |",
        fmt(fact(f, "trim1_released_bytes")),
        fmt(fact(f, "trim2_released_bytes")),
        fmt(after_trim),
        fmt(bound),
        yes(after_trim.zip(bound).map(|(a, b)| a <= b))
    );
    if let Some((k, v)) = f.iter().find(|(k, _)| k.starts_with("pool_after_cross")) {
        let counters = format!("{k}={v}");
        let counters = counters.trim_start_matches("pool_after_cross:").trim();
        let _ = writeln!(s, "\nPool counters after the cross-CPU samples: {counters}");
    }

    datapath(&mut s, med, dp);
    let _ = writeln!(s, "\n{END}");
    Ok(s)
}

fn datapath(s: &mut String, med: Med, dp: &Facts) {
    let _ = writeln!(
        s,
        "\n### Data path (`benches/datapath.rs`): per NBL, on ndis-sim\n"
    );
    let _ = writeln!(s, "mdlpool's `NetAllocateMdl` / `NetFreeMdl` pair (the pool) against NDIS's default allocator (NULL handlers:");
    let _ = writeln!(s, "`ExAllocatePool2` + `MmBuildMdlForNonPagedPool` on every retreat, `ExFreePool` on every advance, as ndis.sys");
    let _ = writeln!(s, "does), one virtual CPU at DISPATCH_LEVEL, one NB of 60 bytes per NBL, `ExerciseBytes = 14`. Criterion's");
    let _ = writeln!(s, "medians:\n");
    let _ = writeln!(
        s,
        "| benchmark | pool pair | NDIS default (NULL) |\n|---|---:|---:|"
    );
    for g in ["exercise_round_trip", "send_through_stack"] {
        let grp = format!("datapath/{g}");
        // criterion stores group "a/b" under the directory "a_b".
        let dir = format!("datapath_{g}");
        let f = |p: &str| {
            med(&dir, p)
                .map(|v| format!("{v:.1} ns"))
                .unwrap_or_else(|| "n/a".into())
        };
        let _ = writeln!(s, "| `{grp}` | **{}** | {} |", f("pool"), f("ndis_default"));
    }
    let rounds = fact(dp, "rounds").unwrap_or(0.0);
    let _ = writeln!(s, "\nInterleaved A/B in the same binary ({rounds:.0} rounds alternating which side goes first, so load drift hits");
    let _ = writeln!(
        s,
        "both alike; median ns per NBL; ratio = median of the per-round pool / default ratios):\n"
    );
    let _ = writeln!(s, "| run | what one iteration is | pool | NDIS default | pool / default |\n|---|---|---:|---:|---:|");
    for (name, what) in DATAPATH {
        let g = |k: &str| fact(dp, &format!("{name}.{k}"));
        let v = |x: Option<f64>, d: usize| {
            x.map(|x| format!("{x:.d$}"))
                .unwrap_or_else(|| "n/a".into())
        };
        let _ = writeln!(
            s,
            "| `{name}` | {what} | {} | {} | **{}** |",
            v(g("pool"), 1),
            v(g("ndis_default"), 1),
            v(g("ratio"), 3)
        );
    }
    let bk_d = fact(dp, "bookkeeping_default_ns");
    let bk_h = fact(dp, "bookkeeping_handler_ns");
    if let (Some(d), Some(h)) = (bk_d, bk_h) {
        let _ = writeln!(s, "\nThe simulator's bookkeeping per NBL, measured in the same binary: {d:.1} ns on the NDIS-default side (the");
        let _ = writeln!(s, "simulated `ExAllocatePool2` / `ExFreePool` keep every block in a table, the default allocator records");
        let _ = writeln!(s, "each MDL's origin, and each free checks the block's tail pattern, fills it and holds it in the special");
        let _ = writeln!(
            s,
            "pool's quarantine), {h:.1} ns on the pool side (the simulator checks the MDL"
        );
        let _ = writeln!(s, "`NetAllocateMdl` returns and registers it until `NetFreeMdl`). A real kernel has neither. The");
        let _ = writeln!(s, "`_bookkeeping_both` runs charge each side the other's share (`ndis_sim::bench_only`, which panics");
        let _ = writeln!(s, "outside `cargo bench`), so both pay the same simulator overhead; the other runs show the simulator as is.");
    }
    let r = |n: &str| fact(dp, &format!("{n}.ratio"));
    if let (Some(a), Some(b)) = (
        r("exercise_round_trip"),
        r("exercise_round_trip_bookkeeping_both"),
    ) {
        let _ = writeln!(s, "\nReading: the filter's own per-NBL work with the pool costs {a:.3} of the NDIS default's as the");
        let _ = writeln!(s, "simulator charges it, and {b:.3} when the simulator's bookkeeping weighs the same on both sides.");
        if let (Some(c), Some(d)) = (
            r("send_through_stack"),
            r("send_through_stack_bookkeeping_both"),
        ) {
            let _ = writeln!(s, "On the whole simulated send path, dominated by the simulator's own NBL handling, the ratios are");
            let _ = writeln!(s, "{c:.3} and {d:.3}. All figures are simulator figures: compare the two sides, not absolute values.");
        }
    }
}

fn yes(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "n/a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(g: &str, p: &str) -> Option<f64> {
        let base = match g {
            "pool_same_cpu" => 4.0,
            "pool_burst" => 6.0,
            "pool_cross_cpu" => 25.0,
            _ => 5.0,
        };
        let k = match p {
            "pool" => 1.4,
            "floor" => 1.0,
            "lookaside" => 30.0,
            "arrayqueue" => 2.0,
            "mutex_vec" => 3.0,
            _ => 9.0,
        };
        (g != "pool_burst" || p != "arrayqueue").then_some(base * k)
    }

    fn info() -> RunInfo {
        RunInfo {
            date: "d".into(),
            machine: "m".into(),
            rustc: "r".into(),
            load_before: "0.1 0.2 0.3".into(),
            load_after: "0.4 0.5 0.6".into(),
        }
    }

    #[test]
    fn section_has_every_ratio_and_reading() {
        let dp: Facts = vec![
            ("rounds".into(), "200".into()),
            ("exercise_round_trip.ratio".into(), "0.5".into()),
            (
                "exercise_round_trip_bookkeeping_both.ratio".into(),
                "0.7".into(),
            ),
            ("bookkeeping_default_ns".into(), "160".into()),
            ("bookkeeping_handler_ns".into(), "90".into()),
        ];
        let s = render(&info(), &fake, &Vec::new(), &dp).unwrap();
        assert!(s.starts_with(BEGIN) && s.trim_end().ends_with(END));
        for name in [
            "same CPU: pool / floor | 1.40 | <= 1.5 | yes",
            "cross CPU: pool / hand-off floor | 1.40 | <= 1.3 | **no**",
            "contended: shared lookaside / pool | 21.43 | >= 10 | yes",
            "MISSED by 0.10",
            "0.500 of the NDIS default's",
            "load average (1/5/15 min) before the run: 0.1 0.2 0.3",
            "CR8",
        ] {
            assert!(s.contains(name), "missing {name:?} in\n{s}");
        }
        // With the interleaved rounds in the facts, the same-CPU ratios are theirs, not the medians'.
        let mut f: Facts = vec![("interleaved_rounds".into(), "41".into())];
        for (peer, ns, r) in [
            ("floor", 3.0, 1.0),
            ("pool", 5.1, 1.7),
            ("mimalloc_ndis", 45.0, 15.3),
            ("system_ndis", 10.2, 3.4),
        ] {
            for (k, v) in [("ns", ns), ("ratio", r), ("ratio_q1", r), ("ratio_q3", r)] {
                f.push((format!("interleaved_same_cpu_{peer}_{k}"), v.to_string()));
            }
        }
        let s = render(&info(), &fake, &f, &dp).unwrap();
        for name in [
            "same CPU: pool / floor | 1.70 | <= 1.5 | **no**",
            "interleaved with the floor in 41 rounds on one thread: 5.10 ns against 3.00 ns",
            "criterion's medians, measured one after the other, give 1.40",
            "same CPU: mimalloc (NDIS default shape) / pool | 9.00 | >= 3 | yes",
            "same CPU: system allocator (NDIS default shape) / pool | 2.00 | >= 3 | **no**",
            "MISSED by 1.00 (3x would need the pool at 3.40 ns, it took 5.10 ns)",
        ] {
            assert!(s.contains(name), "missing {name:?} in\n{s}");
        }
        // A missing criterion result for a ratio's input is an error, not a silent row.
        assert!(render(&info(), &|_: &str, _: &str| None, &Vec::new(), &dp).is_err());
    }

    #[test]
    fn chart_is_one_svg_with_a_bar_per_result() {
        let svg = chart(&fake, &info());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let bars = svg.matches("<rect x=").count();
        assert_eq!(bars, SCENARIOS.len() * PEERS.len() - 1);
        assert_eq!(svg.matches(">n/a<").count(), 1);
    }
}
