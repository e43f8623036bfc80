//! `report.md`: the summary as Markdown tables, the plots, and the plain findings.

use std::fmt::Write as _;

use super::analysis::{MAX_LISTED_WRONG, ReportSummary};
use super::fmt::{self, md_cell};
use super::stats::RequestStats;
use super::{GOSSIP_SVG, LATENCY_SVG, SERVED_BY_SVG};
use crate::record::RECORDS_FILE;

/// Renders `report.md` from a summary. `raw_lines` is the number of lines in the records file.
pub fn render(s: &ReportSummary, raw_lines: usize) -> String {
    let mut md = String::new();
    let scenario = s.meta.as_ref().map_or("(unnamed scenario)", |m| m.scenario.as_str());
    let _ = writeln!(md, "# rpcmesh testnet report: {scenario}\n");
    if s.interrupted {
        let _ = writeln!(
            md,
            "> **Partial report: the run was interrupted** after {}. Every number below covers only that part.\n",
            fmt::secs(s.duration_ms)
        );
    }
    if s.meta.is_none() {
        md.push_str("> The records have no `meta` line: the setup below is inferred from the data.\n\n");
    }
    if let Some(description) = s.meta.as_ref().map(|m| m.description.trim()).filter(|d| !d.is_empty()) {
        let _ = writeln!(md, "{description}\n");
    }

    setup(&mut md, s);
    summary(&mut md, s);
    phases(&mut md, s);
    gateways(&mut md, s);
    faults(&mut md, s);
    verified_answers(&mut md, s);
    censorship(&mut md, s);
    gossip(&mut md, s);
    wrong_and_errors(&mut md, s);

    md.push_str("## Plots\n\n");
    let _ = writeln!(md, "![Latency over time]({LATENCY_SVG})\n");
    let _ = writeln!(md, "![Served-by share over time]({SERVED_BY_SVG})\n");
    let _ = writeln!(md, "![Gossip propagation CDF]({GOSSIP_SVG})\n");

    md.push_str("## What this shows\n\n");
    for line in &s.findings {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(
        md,
        "\nRaw data: [{RECORDS_FILE}]({RECORDS_FILE}) ({})",
        fmt::plural(raw_lines as u64, "line", "lines")
    );
    md
}

fn setup(md: &mut String, s: &ReportSummary) {
    md.push_str("## Setup\n\n| | |\n|---|---|\n");
    if let Some(m) = &s.meta {
        let chains = m.chains.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        let _ = writeln!(md, "| Scenario | {} |", md_cell(&m.scenario));
        let _ = writeln!(md, "| Nodes | {} |", m.nodes);
        let _ = writeln!(md, "| Chains | {} |", if chains.is_empty() { "–".into() } else { chains });
        let _ = writeln!(md, "| Backend | {} |", if m.backend.is_empty() { "–" } else { &m.backend });
        if m.started_at_unix_ms > 0 {
            let _ = writeln!(md, "| Started | {} |", fmt::utc(m.started_at_unix_ms));
        }
    }
    let _ = writeln!(
        md,
        "| Duration | {}{} |",
        fmt::secs(s.duration_ms),
        if s.interrupted { " (interrupted)" } else { "" }
    );
    let _ = writeln!(
        md,
        "| Records | {} ({} requests, {} fault events, {} view changes, {} gossip deliveries) |",
        s.records,
        s.overall.requests,
        s.faults.len(),
        s.view_changes,
        s.gossip.deliveries
    );
    md.push('\n');
    if let Some(m) = s.meta.as_ref().filter(|m| !m.node_peer_ids.is_empty()) {
        md.push_str("| Node | PeerId |\n|---:|---|\n");
        for (i, peer) in m.node_peer_ids.iter().enumerate() {
            let _ = writeln!(md, "| {i} | `{}` |", md_cell(peer));
        }
        md.push('\n');
    }
}

fn stats_cells(st: &RequestStats) -> String {
    format!(
        "{} | {} | {} | {} | {} | {} | {}",
        st.requests,
        fmt::percent(st.ok, st.requests),
        st.error,
        st.wrong,
        fmt::opt_latency_ms(st.p50_us),
        fmt::opt_latency_ms(st.p95_us),
        fmt::opt_latency_ms(st.p99_us)
    )
}

fn summary(md: &mut String, s: &ReportSummary) {
    let o = &s.overall;
    md.push_str("## Summary\n\n");
    md.push_str("| Requests | OK | Failed | Wrong | Availability | p50 ms | p95 ms | p99 ms | max ms |\n");
    md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        o.requests,
        o.ok,
        o.error,
        o.wrong,
        fmt::percent(o.ok, o.requests),
        fmt::opt_latency_ms(o.p50_us),
        fmt::opt_latency_ms(o.p95_us),
        fmt::opt_latency_ms(o.p99_us),
        fmt::opt_latency_ms(o.max_us)
    );
    md.push_str(
        "Availability is correct answers over requests, rounded down. A wrong answer is one that disagrees \
         with the chain's truth. Latencies cover every request, failed and wrong ones included; \
         percentiles are nearest-rank (always a measured value).\n\n",
    );
}

fn phases(md: &mut String, s: &ReportSummary) {
    md.push_str(
        "## Phases\n\n| Phase | From | To | Requests | Availability | Failed | Wrong | p50 ms | p95 ms | p99 ms |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in &s.phases {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            md_cell(&p.name),
            fmt::secs(p.start_ms),
            fmt::secs(p.end_ms),
            stats_cells(&p.stats)
        );
    }
    md.push('\n');
}

fn gateways(md: &mut String, s: &ReportSummary) {
    if s.gateways.is_empty() {
        return;
    }
    md.push_str("## Gateways\n\n| Gateway | HTTP | WS | Requests | Availability | Failed | Wrong | p50 ms | p95 ms | p99 ms |\n");
    md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for g in &s.gateways {
        let _ = writeln!(md, "| {} | {} | {} | {} |", g.gateway, g.http, g.ws, stats_cells(&g.stats));
    }
    md.push('\n');
}

fn faults(md: &mut String, s: &ReportSummary) {
    md.push_str("## Faults\n\n");
    if s.faults.is_empty() {
        md.push_str("No faults were injected.\n\n");
        return;
    }
    md.push_str(
        "| Fault | Node | Injected at | Healed at | Detected after | Routed around after | Longest stall | Requests | Failed during | Wrong during | Served by faulty |\n",
    );
    md.push_str("|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|\n");
    for f in &s.faults {
        let detected = match &f.detection {
            Some(d) => format!("{} (node {} saw `{}`)", fmt::duration(d.after_ms), d.observer, d.health),
            None => "not detected".into(),
        };
        let routed = match f.route_around_ms() {
            None => "n/a (not in use)".into(),
            Some(None) => {
                let never: Vec<usize> = f.routing.iter().filter(|g| g.after_ms.is_none()).map(|g| g.gateway).collect();
                format!("not routed around (gateway {})", fmt::list(&never))
            }
            Some(Some(ms)) => fmt::duration(ms),
        };
        let healed = match f.healed_at_ms {
            Some(h) => fmt::secs(h),
            None => format!("– (ended {})", fmt::secs(f.end_ms)),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md_cell(&f.kind),
            f.node.map_or("–".into(), |n| n.to_string()),
            fmt::secs(f.injected_at_ms),
            healed,
            detected,
            routed,
            f.longest_stall.as_ref().map_or("–".into(), |st| format!("{} (gw {})", fmt::duration(st.ms), st.gateway)),
            f.stats.requests,
            f.stats.error,
            f.stats.wrong,
            f.served_by_faulty
        );
    }
    md.push_str(
        "\n*Detected after*: injection → first view change of the faulty node to anything but `healthy`, by any \
         node, before the fault ended (a `censor` fault: its first `filters` label; a `lie` fault: its first cordon). *Routed around after*: injection → completion of the first correct \
         answer from another node to a request sent after the injection, on each gateway that was using the \
         faulty node just before; the slowest such gateway. *Longest stall*: the longest time a gateway went \
         without a correct answer inside the fault window. Counts are of requests sent inside the window.\n\n",
    );
}

fn verified_answers(md: &mut String, s: &ReportSummary) {
    if s.lies.is_empty() {
        return;
    }
    md.push_str("## Verified answers\n\n");
    md.push_str(
        "| Liar | Fault | Injected at | Ended | Requests | Wrong reaching clients | Sent before first cordon | First cordon after | Mesh-wide cordon after | Wrong sent after it (other gateways) | In flight at it | Cordoned by |\n",
    );
    md.push_str("|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|\n");
    for l in &s.lies {
        let t = l.total();
        let elsewhere = l.others_total();
        let began = |ms: Option<u64>| ms.map_or(String::new(), |b| format!("; began {}", fmt::duration(b)));
        let first = match l.detection() {
            Some(c) => format!(
                "{} (daemon {}{})",
                fmt::duration(c.after_ms.unwrap_or(0)),
                c.observer,
                began(l.detected_began().and_then(|b| b.began_after_ms))
            ),
            None => "never".into(),
        };
        let (everywhere, after, in_flight) = match l.cordoned_everywhere_ms() {
            Some(ms) => (
                match l.everywhere_began_ms() {
                    Some(b) => format!("{} (began {})", fmt::duration(ms), fmt::duration(b)),
                    None => fmt::duration(ms),
                },
                format!("{} of {}", elsewhere.wrong_after_cordon, elsewhere.requests_after_cordon),
                elsewhere.wrong_in_flight.to_string(),
            ),
            None => ("never".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            md,
            "| node {} | `{}` | {} | {} | {} | {} | {} | {first} | {everywhere} | {after} | {in_flight} | {} of {} |",
            l.node,
            md_cell(&l.kind),
            fmt::secs(l.injected_at_ms),
            fmt::secs(l.end_ms),
            t.requests,
            t.wrong,
            t.wrong_before_detection,
            l.cordoned_by().len(),
            l.cordons.len()
        );
    }
    md.push_str(
        "\n*Requests*: sent while the node lied, through every gateway. *Wrong reaching clients*: those answered \
         wrong against the chain's truth. *First cordon after*: injection → the first poll of any daemon's `/peers` \
         showing a cordon on the liar (polled every 250 ms). *Mesh-wide cordon after*: the same for the slowest \
         daemon **other than the liar's own** (never if one never showed it): a cordon is how a daemon stops \
         routing to a peer, and no daemon can sign evidence against its own node (evidence carries the accused's \
         signed receipt of a relayed answer). *Began*: the same times by the daemons' own clocks (each \
         cordon's `since_ms`; the daemons share the runner's clock), which the poll rounds up. Wrong answers are split by when their request was sent: before the \
         first cordon; after the mesh-wide one, through the gateways of daemons other than the liar (of the \
         requests sent there after it); *in flight*: wrong answers through those gateways to requests sent before \
         the mesh-wide cordon and answered after it, counted in neither. The liar's own gateway serves from its own \
         node, to which no cordon applies: its row below tells how long wrong answers reached its clients.\n\n",
    );
    md.push_str(
        "| Liar | Gateway | Verify | Requests | Failed | Wrong | Sent before first cordon | Sent after mesh-wide cordon | Last wrong sent after | Served by liar |\n",
    );
    md.push_str("|---:|---|---|---:|---:|---:|---:|---:|---|---:|\n");
    for l in &s.lies {
        let everywhere = l.cordoned_everywhere_ms().is_some();
        for g in &l.gateways {
            let gateway =
                if g.gateway == l.node { format!("{} (the liar's own)", g.gateway) } else { g.gateway.to_string() };
            let after = if everywhere {
                format!("{} of {}", g.wrong_after_cordon, g.requests_after_cordon)
            } else {
                "–".into()
            };
            let last = g.last_wrong_after_ms.map_or("–".to_string(), fmt::duration);
            let _ = writeln!(
                md,
                "| node {} | {gateway} | {} | {} | {} | {} | {} | {after} | {last} | {} of {} |",
                l.node,
                md_cell(&super::lies::mode_name(&g.verify)),
                g.requests,
                g.failed,
                g.wrong,
                g.wrong_before_detection,
                g.served_by_liar,
                g.served_known
            );
        }
    }
    md.push_str(
        "\n*Verify*: the `x-rpcmesh-verify` the clients sent (*daemon default*: none, the gateway's configured \
         mode). *Last wrong sent after*: injection → the send time of the gateway's last wrong answer. *Served by \
         liar*: of the requests whose server is known (HTTP answers name it; WebSocket answers do not).\n\n",
    );
    md.push_str(
        "| Liar | Daemon | Cordoned after | Began (daemon clock) | Kind | Evidence from |\n|---:|---|---|---|---|---|\n",
    );
    for l in &s.lies {
        for c in &l.cordons {
            let daemon =
                if c.observer == l.node { format!("{} (the liar's own)", c.observer) } else { c.observer.to_string() };
            let began = c.began_after_ms.map_or("–".to_string(), fmt::duration);
            let kind = if c.kind.is_empty() { "–".to_string() } else { format!("`{}`", md_cell(&c.kind)) };
            let from = match (c.after_ms, c.reporter) {
                (None, _) => "–".to_string(),
                (Some(_), Some(r)) if r == c.observer => format!("daemon {r} (itself)"),
                (Some(_), Some(r)) => format!("daemon {r}"),
                (Some(_), None) => "unknown".into(),
            };
            let after = c.after_ms.map_or("never".to_string(), fmt::duration);
            let _ = writeln!(md, "| node {} | {daemon} | {after} | {began} | {kind} | {from} |", l.node);
        }
    }
    md.push_str(
        "\n*Began (daemon clock)*: injection → the cordon's `since_ms` on that daemon (the same machine clock; \
         exact where the poll rounds up). *Evidence from*: the node that signed the evidence the cordon rests on.\n\n",
    );
}

fn censorship(md: &mut String, s: &ReportSummary) {
    if s.censorship.is_empty() && s.transactions.is_empty() {
        return;
    }
    md.push_str("## Censorship\n\n");
    if !s.censorship.is_empty() {
        md.push_str(
            "| Censor | Address | Declared | Requests about it | Censored answers reaching clients | Failed | Served by censor | Labelled by every daemon after | Labelled by |\n",
        );
        md.push_str("|---:|---|---|---:|---:|---:|---:|---|---:|\n");
        for c in &s.censorship {
            let declared = if c.declared.is_empty() {
                "–".to_string()
            } else {
                c.declared.iter().map(|p| format!("`{}`", md_cell(p))).collect::<Vec<_>>().join(", ")
            };
            let everywhere = match c.labelled_everywhere_ms() {
                Some(ms) => fmt::duration(ms),
                None => "never".into(),
            };
            let _ = writeln!(
                md,
                "| node {} | `{}` | {} | {} | {} | {} | {} of {} | {} | {} of {} |",
                c.node,
                md_cell(&c.address),
                declared,
                c.about.requests,
                c.censored_answers,
                c.about.error,
                c.served_by_censor,
                c.served_known,
                everywhere,
                c.labelled_by().len(),
                c.labels.len()
            );
        }
        md.push_str(
            "\n*Requests about it*: account reads of the censored address and transactions to it, sent while the \
             censor was on. *Censored answers reaching clients*: those reads, and log queries (the censor drops logs \
             naming the address), answered wrong against the chain's truth. *Served by censor*: requests of any kind the censoring node served, of those whose server is \
             known (HTTP). *Labelled after*: injection → the first poll of a daemon's `/peers` showing a `filters` \
             label on the censoring node; every daemon's, the slowest (never if one never did).\n\n",
        );
        md.push_str("| Censor | Daemon | Labelled after | Label names |\n|---:|---:|---|---|\n");
        for c in &s.censorship {
            for l in &c.labels {
                let after = l.after_ms.map_or("never".to_string(), fmt::duration);
                let names = if l.subjects.is_empty() { "–".to_string() } else { md_cell(&l.subjects.join(", ")) };
                let _ = writeln!(md, "| node {} | {} | {after} | {names} |", c.node, l.observer);
            }
        }
        md.push('\n');
    }
    if !s.transactions.is_empty() {
        md.push_str("| To | Gateway | Sent | Accepted | Refused | Mined | Accepted, not mined |\n");
        md.push_str("|---|---|---:|---:|---:|---:|---:|\n");
        for t in &s.transactions {
            let gateway = t.gateway.map_or("**all**".to_string(), |g| g.to_string());
            let _ = writeln!(
                md,
                "| `{}` | {gateway} | {} | {} | {} | {} | {} |",
                md_cell(&t.to),
                t.sent,
                t.accepted,
                t.refused,
                t.mined,
                t.accepted_not_mined
            );
        }
        md.push_str(
            "\nTransactions the load sent through the gateways. *Accepted*: the gateway answered with the \
             transaction's hash. *Refused*: an error, a wrong hash or no answer. *Mined*: a receipt from the chain \
             itself (not through the mesh) by the end of the run.\n\n",
        );
    }
}

fn gossip(md: &mut String, s: &ReportSummary) {
    let g = &s.gossip;
    md.push_str("## Gossip\n\n");
    if g.messages == 0 {
        md.push_str("No gossip deliveries were recorded.\n\n");
        return;
    }
    let ms = |v: Option<u64>| v.map_or("–".to_string(), |v| v.to_string());
    let conv = |v: Option<u64>| v.map_or("not reached".to_string(), |v| v.to_string());
    md.push_str("| Messages | Reached all | Hidden by a newer one | Deliveries | Delivery p50 ms | Delivery p99 ms | Delivery max ms | Convergence p50 ms | Convergence p99 ms |\n");
    md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        md,
        "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} |\n",
        g.messages,
        g.fully_delivered,
        fmt::percent(g.fully_delivered, g.messages),
        g.hidden,
        g.deliveries,
        ms(g.delivery_p50_ms),
        ms(g.delivery_p99_ms),
        ms(g.delivery_max_ms),
        conv(g.convergence_p50_ms),
        conv(g.convergence_p99_ms)
    );
    let _ = writeln!(
        md,
        "Delivery: publish → accepted at one node. Convergence: publish → accepted at all {} other nodes, \
         over all messages (a message that never reached every node counts as slower than any) but the \
         hidden ones (a node showed a newer message of the same publisher: one replaced between two polls \
         cannot be told from one lost, so it is left out).\n",
        g.expected_observers
    );
    md.push_str("| Observer | Deliveries | Missed | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|---:|\n");
    for o in &g.per_observer {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            o.observer,
            o.deliveries,
            o.missed,
            ms(o.p50_ms),
            ms(o.p99_ms),
            ms(o.max_ms)
        );
    }
    md.push('\n');
}

fn wrong_and_errors(md: &mut String, s: &ReportSummary) {
    md.push_str("## Wrong answers\n\n");
    if s.wrong_answers.is_empty() {
        md.push_str("None: every answer that came back agreed with the chain's truth.\n\n");
    } else {
        md.push_str("| Sent at | Gateway | Method | Served by | Detail |\n|---:|---:|---|---|---|\n");
        for r in s.wrong_answers.iter().take(MAX_LISTED_WRONG) {
            let served = match (r.served_by_node, &r.served_by) {
                (Some(n), _) => format!("node {n}"),
                (None, Some(p)) => format!("`{}`", md_cell(&fmt::short_peer(p))),
                (None, None) => "unknown".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | `{}` | {} | {} |",
                fmt::secs(r.t_ms),
                r.gateway,
                md_cell(&r.method),
                served,
                md_cell(r.detail.as_deref().unwrap_or("–"))
            );
        }
        if s.wrong_answers.len() > MAX_LISTED_WRONG {
            let _ = writeln!(md, "\n… and {} more in `{RECORDS_FILE}`.", s.wrong_answers.len() - MAX_LISTED_WRONG);
        }
        md.push('\n');
    }
    if !s.top_errors.is_empty() {
        md.push_str("## Failures by error\n\n| Count | Error |\n|---:|---|\n");
        for e in &s.top_errors {
            let _ = writeln!(md, "| {} | {} |", e.count, md_cell(&e.detail));
        }
        md.push('\n');
    }
}
