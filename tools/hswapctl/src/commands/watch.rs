// SPDX-License-Identifier: GPL-2.0
//! `hswapctl watch`: a refreshing view of every object with call rates.
//! Not a terminal: one snapshot. Ctrl-C ends it cleanly.

use super::{status, Outcome};
use crate::device::Device;
use crate::model::Status;
use crate::output;
use anyhow::Result;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fills `call_rate` from the previous sample.
pub fn with_rates(now: Vec<Status>, before: &HashMap<u32, u64>, elapsed: Duration) -> Vec<Status> {
    let secs = elapsed.as_secs_f64();
    now.into_iter()
        .map(|mut s| {
            s.call_rate = before
                .get(&s.id)
                .filter(|_| secs > 0.0)
                .map(|prev| s.calls.saturating_sub(*prev) as f64 / secs);
            s
        })
        .collect()
}

fn render(all: &[Status], json: bool) -> Result<String> {
    Ok(if json {
        serde_json::to_string(all)? + "\n"
    } else {
        output::status_table(all)
    })
}

pub fn run(dev: &dyn Device, interval_ms: u64, json: bool) -> Result<Outcome> {
    let mut stdout = std::io::stdout();
    if !stdout.is_terminal() {
        write!(stdout, "{}", render(&status::all(dev)?, json)?)?;
        return Ok(Outcome::Ok);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;
    let interval = Duration::from_millis(interval_ms.max(100));
    let mut before = HashMap::new();
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let all = with_rates(status::all(dev)?, &before, now - last);
        before = all.iter().map(|s| (s.id, s.calls)).collect();
        last = now;
        // Clear the screen, home the cursor, draw.
        write!(
            stdout,
            "\x1b[2J\x1b[Hhswapctl watch (every {} ms, Ctrl-C to quit)\n\n",
            interval.as_millis()
        )?;
        write!(stdout, "{}", render(&all, json)?)?;
        stdout.flush()?;
        let wake = Instant::now() + interval;
        while Instant::now() < wake && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    writeln!(stdout)?;
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::Fake;

    #[test]
    fn rates_from_two_samples() {
        let dev = Fake::with_objects(2);
        let first = status::all(&dev).unwrap();
        let before: HashMap<u32, u64> = first.iter().map(|s| (s.id, s.calls)).collect();
        dev.add_calls(1, 500);
        let rated = with_rates(
            status::all(&dev).unwrap(),
            &before,
            Duration::from_millis(500),
        );
        assert_eq!(rated[0].call_rate, Some(1000.0));
        assert_eq!(rated[1].call_rate, Some(0.0));
        assert!(output::status_table(&rated).contains("1000"));
    }
}
