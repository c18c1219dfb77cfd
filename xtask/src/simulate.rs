//! `cargo xtask simulate`: the shipped amd64 `mdlpool.sys` itself, loaded by sysrun into ndis-sim,
//! attached to a simulated adapter and run under traffic on N virtual CPUs, with a live progress line;
//! then paused, detached and unloaded, and the pool statistics table printed from the image's
//! exported stats root by `windbg/mdlpool.js` — the same formatter `!mdlpool` uses in WinDbg.
//!
//! Owns only the command's flow; building the package is `package::run`, loading is `sysrun`.

use std::path::PathBuf;

pub const USAGE: &str = "\
  simulate [--mode exercise|vlan] [--seconds N] [--cpus N] [--sys PATH] [--pcap FILE]
      Load the amd64 mdlpool.sys (built now with `package --target amd64`, or
      the image at PATH) into ndis-sim with sysrun, attach it to a simulated
      adapter, run traffic both ways on N virtual CPUs (default 2) for N
      seconds (default 5) with a progress line, then pause, detach, unload and
      print the pool statistics table read from the image's MdlPoolStats.
      With --pcap FILE (pcap or pcapng, Ethernet): instead of generated
      traffic, send every frame of the capture down and indicate it up, in
      capture order over the virtual CPUs and varying MDL layouts, check the
      frames on the wire and at the protocol byte for byte (exercise and
      passthrough: identical; vlan: tagged as configured), in the --mode given
      or, without --mode, in every mode; print per-protocol counts and the
      pool table. Make captures with xtask/captures/make.sh.
      Needs an x86_64 Linux host and node (for windbg/mdlpool.js).
";

/// Options of one run.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    pub mode: String,
    pub seconds: u64,
    pub cpus: usize,
    pub sys: Option<PathBuf>,
    /// Replay this capture instead of generated traffic.
    pub pcap: Option<PathBuf>,
    /// Whether --mode was given (a capture replay runs every mode otherwise).
    pub mode_given: bool,
}

pub fn parse(args: &[String]) -> Result<SimulateOptions, String> {
    let mut o = SimulateOptions {
        mode: "exercise".into(),
        seconds: 5,
        cpus: 2,
        sys: None,
        pcap: None,
        mode_given: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--mode" => {
                o.mode = value("--mode")?;
                o.mode_given = true;
                if o.mode != "exercise" && o.mode != "vlan" {
                    return Err(format!("unknown mode {:?}: exercise or vlan", o.mode));
                }
            }
            "--seconds" => {
                o.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
                if o.seconds == 0 || o.seconds > 3600 {
                    return Err("--seconds must be 1..=3600".into());
                }
            }
            "--cpus" => {
                o.cpus = value("--cpus")?
                    .parse()
                    .map_err(|e| format!("--cpus: {e}"))?;
                if !(1..=64).contains(&o.cpus) {
                    return Err("--cpus must be 1..=64".into());
                }
            }
            "--sys" => o.sys = Some(PathBuf::from(value("--sys")?)),
            "--pcap" => o.pcap = Some(PathBuf::from(value("--pcap")?)),
            other => return Err(format!("unknown argument {other:?}\n\nusage:\n{USAGE}")),
        }
    }
    Ok(o)
}

/// On other hosts: refused (sysrun executes amd64 code and needs Linux signal contexts).
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub fn run(_o: &SimulateOptions) -> Result<(), String> {
    Err(
        "cargo xtask simulate runs the amd64 image in this process and needs an x86_64 Linux host"
            .into(),
    )
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use linux::run;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod linux {
    use super::SimulateOptions;
    use ndis_sim::wire::{OffloadKind, OffloadShape};
    use ndis_sim::{AdapterConfig, ConfigValue, NblShape, Sim, SimConfig, Traffic};
    use std::io::{IsTerminal, Write};
    use std::time::{Duration, Instant};
    use xtask::package::{self, Options};
    use xtask::verify::Arch;

    /// Pool figures for the progress line, from the live stats root.
    fn pool_line(image: &sysrun::LoadedImage) -> String {
        match sysrun::stats::read(image) {
            Ok(d) if d.state == 2 || d.state == 1 => {
                let t = d.totals();
                let hit = if t.allocates == 0 {
                    "-".to_string()
                } else {
                    format!(
                        "{:.1}%",
                        (t.allocates - t.allocate_misses) as f64 * 100.0 / t.allocates as f64
                    )
                };
                format!("pool hit {hit}, in flight {}", t.in_flight)
            }
            Ok(d) => format!("pool stats not published (state {})", d.state),
            Err(e) => format!("pool stats unreadable: {e}"),
        }
    }

    pub fn run(o: &SimulateOptions) -> Result<(), String> {
        let sys = match &o.sys {
            Some(p) => p.clone(),
            None => {
                package::run(&Options {
                    arches: vec![Arch::Amd64],
                    verbose: false,
                    // The package as `cargo xtask package` makes it by default: signed.
                    sign: xtask::sign::SignMode::Test,
                })?;
                package::package_dir(Arch::Amd64).join(xtask::names::SYS_FILE)
            }
        };
        if let Some(pcap) = &o.pcap {
            let modes: Vec<&str> = if o.mode_given {
                vec![o.mode.as_str()]
            } else {
                vec!["exercise", "vlan", "passthrough"]
            };
            return crate::replay::run(&sys, pcap, &modes, o.cpus);
        }
        // Refuse a bad image before starting anything, with the loader's own error.
        let image = sysrun::LoadedImage::load(&sys).map_err(|e| e.to_string())?;
        println!(
        "simulate: {} mapped at {:#x} ({} imports bound to ndis-sim, {} PDB symbols); mode {}, {} virtual CPUs, {} s",
        sys.display(),
        image.base(),
        image.pe().imports.len(),
        image.symbols().map_or(0, |s| s.len()),
        o.mode,
        o.cpus,
        o.seconds
    );

        let sim = Sim::start(SimConfig {
            cpus: o.cpus,
            ..SimConfig::default()
        });
        let mut drv = sysrun::SysDriver::start(&sim, image).map_err(|e| e.to_string())?;
        let nic = sim.add_adapter(AdapterConfig::default());
        nic.set_config("Mode", ConfigValue::Str(o.mode.clone()));
        nic.attach().map_err(|e| format!("FilterAttach: {e:?}"))?;
        nic.restart().map_err(|e| format!("FilterRestart: {e:?}"))?;
        println!(
            "simulate: DriverEntry, attach and restart ran inside the image; module {:?}",
            nic.state()
        );

        let traffic = Traffic {
            steps_per_cpu: 500,
            send: NblShape {
                nbls: 2,
                nbs_per_nbl: 2,
                mdl_lengths: vec![14, 200],
                frame_len: 300,
                // vlan: the protocol asks for priority 3, VLAN 42 through the NBL's 802.1Q info, so the
                // filter inserts the tag in software on every send.
                ieee8021q: if o.mode == "vlan" {
                    ndis_sys::NDIS_NET_BUFFER_LIST_8021Q_INFO::new(3, 0, 42).Value
                } else {
                    0
                },
                ..NblShape::default()
            },
            receive: NblShape {
                nbls: 2,
                frame_len: 300,
                ..NblShape::default()
            },
            resources_one_in: 4,
            seed: 1,
            cpus: Vec::new(),
        };
        // vlan: traffic as the TCP/IP transport hands it to an adapter with task offloads —
        // headers in the first MDL behind `backfill` unused bytes, payload in the MDLs after it —
        // the rounds cycling through LSOv2 over IPv4 and IPv6 (44 segments' worth of payload each),
        // checksum offload (TCP over IPv4) and USO (IPv6); the simulated NIC parses in-band tags.
        // With 64 bytes of backfill the tag goes in place; with 2 or 0 the filter builds the tagged
        // header in a pool block (NetAllocateMdl through the retreat).
        let offloads: Vec<NblShape> = if o.mode == "vlan" {
            [
                (OffloadKind::LsoV2, false, false, 44, 64),
                (OffloadKind::LsoV2, true, true, 44, 64),
                (OffloadKind::Checksum, false, true, 1, 2),
                (OffloadKind::Uso, true, false, 8, 0),
            ]
            .into_iter()
            .map(|(kind, ipv6, options, segments, backfill)| {
                let mut off = OffloadShape {
                    kind,
                    ipv6,
                    udp: false,
                    options,
                    mss: 0,
                    pretagged: None,
                };
                off.mss = off.mss_for(1500);
                let headers = off.header_len() as u32;
                let payload = segments * off.mss;
                NblShape {
                    nbls: 2,
                    nbs_per_nbl: 1,
                    data_offset: backfill,
                    mdl_lengths: vec![backfill + headers, payload / 2, payload - payload / 2],
                    frame_len: (headers + payload) as usize,
                    offload: Some(off),
                    ieee8021q: traffic.send.ieee8021q,
                    ..NblShape::default()
                }
            })
            .collect()
        } else {
            Vec::new()
        };
        let tty = std::io::stdout().is_terminal();
        let start = Instant::now();
        let mut last_print = start;
        let mut last_nbls = 0u64;
        let mut round = 0u64;
        while start.elapsed() < Duration::from_secs(o.seconds) {
            round += 1;
            let send = if offloads.is_empty() {
                traffic.send.clone()
            } else {
                offloads[round as usize % offloads.len()].clone()
            };
            sim.run_traffic(
                &nic,
                &Traffic {
                    seed: round,
                    send,
                    ..traffic.clone()
                },
            );
            let now = Instant::now();
            if now.duration_since(last_print) >= Duration::from_secs(1)
                || start.elapsed() >= Duration::from_secs(o.seconds)
            {
                let c = nic.counters();
                let nbls = c.proto_sent_nbls + c.mp_indicated_nbls;
                let rate = (nbls - last_nbls) as f64 / now.duration_since(last_print).as_secs_f64();
                let line = format!(
                    "[{:>4.1}s] {:>9.0} NBLs/s  sent {} received {}  {}",
                    start.elapsed().as_secs_f64(),
                    rate,
                    c.proto_sent_nbls,
                    c.mp_indicated_nbls,
                    pool_line(drv.image())
                );
                if tty {
                    print!("\r{line}   ");
                } else {
                    println!("{line}");
                }
                let _ = std::io::stdout().flush();
                last_print = now;
                last_nbls = nbls;
            }
            // Complete what the simulated miniport and protocol still hold from this round, so the
            // backlog (and the pool's in-flight count) stays bounded by one round's worth of traffic
            // instead of growing for the whole run.
            nic.drain();
        }
        if tty {
            println!();
        }
        nic.drain();
        let c = nic.counters();
        nic.pause().map_err(|e| format!("FilterPause: {e:?}"))?;
        nic.detach();
        drv.unload(&sim);
        let (reads, writes) = sysrun::trap::cr8_counts();
        println!(
        "simulate: paused, detached, unloaded. {} NBLs sent, {} completed; {} indicated, {} returned; {} CR8 reads and {} writes emulated",
        c.proto_sent_nbls, c.proto_completed_nbls, c.mp_indicated_nbls, c.mp_returned_nbls, reads, writes
    );

        if o.mode == "vlan" {
            let [ck, v1, v2, uso] = c.wire_offload_nbls;
            println!(
                "simulate: offloads asked for by the NBLs reaching the miniport: checksum {ck}, LSOv1 {v1}, LSOv2 {v2}, USO {uso}; {} frames tagged in-band, {} NBLs tagged through Ieee8021QNetBufferListInfo",
                c.wire_tagged_nbs, c.wire_oob_tagged_nbls
            );
        }
        let findings = sim.findings();
        let dump = sysrun::stats::read(drv.image());
        drop(drv);
        if !findings.is_empty() {
            for f in &findings {
                eprintln!("  {f}");
            }
            return Err(format!(
                "{} ndis-sim verifier finding(s) against the loaded image",
                findings.len()
            ));
        }
        sim.finish();

        let dump = dump?;
        if dump.state == 0 {
            return Err(format!(
            "{}'s MdlPoolStats was never published (state empty): this build's DriverEntry does not publish the pool statistics",
            sys.display()
        ));
        }
        let script = workspace_paths::workspace_root()
            .join("windbg")
            .join("mdlpool.js");
        let table = sysrun::stats::render_table(&dump, &script, false)?;
        println!("\n{table}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_and_options() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            (o.mode.as_str(), o.seconds, o.cpus, o.sys.is_none()),
            ("exercise", 5, 2, true)
        );
        let o = parse(&args(&[
            "--mode",
            "vlan",
            "--seconds",
            "2",
            "--cpus",
            "4",
            "--sys",
            "x.sys",
            "--pcap",
            "c.pcapng",
        ]))
        .unwrap();
        assert!(o.mode_given);
        assert_eq!(o.pcap.as_deref().and_then(|p| p.to_str()), Some("c.pcapng"));
        assert_eq!((o.mode.as_str(), o.seconds, o.cpus), ("vlan", 2, 4));
        assert_eq!(o.sys.unwrap().to_str(), Some("x.sys"));
    }

    #[test]
    fn bad_options_are_refused() {
        for bad in [
            &["--mode", "fast"][..],
            &["--seconds", "0"],
            &["--seconds", "x"],
            &["--cpus", "0"],
            &["--cpus"],
            &["--pcap"],
            &["--frobnicate"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
