//! When a CONTINUOUS audit runs next: its `interval` is either a number of
//! seconds or a five-field cron expression, as upstream accepts (upstream
//! checks it with croniter only when the audit first runs; we check it when
//! the audit is created, so a typo is a 400, not a silently dead audit).
//!
//! Cron fields are minute, hour, day of month, month and day of week, with
//! `*`, numbers, `a-b` ranges, `/step`, comma lists, and the English month and
//! day names; day of week 0 and 7 are Sunday. As in Vixie cron and croniter,
//! when both day fields are restricted a day matches if either matches.
//! Times are UTC.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every so many seconds.
    Every(u64),
    Cron(Cron),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: u64, // bit i = minute i
    hours: u32,
    days: u32,    // bit d = day of month d (1..=31)
    months: u16,  // bit m = month m (1..=12)
    weekdays: u8, // bit w = weekday w, 0 = Sunday
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The longest interval we accept: a year. Longer is a typo, not a plan.
const MAX_SECONDS: u64 = 366 * 24 * 3600;

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u64>() {
                Ok(s) if (1..=MAX_SECONDS).contains(&s) => Ok(Schedule::Every(s)),
                _ => Err(format!(
                    "the interval must be between 1 and {MAX_SECONDS} seconds"
                )),
            };
        }
        Cron::parse(text)?.check(text).map(Schedule::Cron)
    }

    /// The first run time strictly after `now`. For a number of seconds the
    /// runs stay on the grid started at `anchor` (the previous planned run),
    /// so a late run does not shift every later one and a service that was
    /// down does not run the audit once per missed period.
    pub fn next_after(&self, anchor: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(s) => {
                let period = Duration::seconds(*s as i64);
                match anchor {
                    Some(a) if a > now => a,
                    Some(a) => {
                        let missed = (now - a).num_seconds() as u64 / s + 1;
                        a + Duration::seconds((missed * s) as i64)
                    }
                    None => now + period,
                }
            }
            Schedule::Cron(c) => c.next_after(now),
        }
    }
}

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "'{text}' is neither a number of seconds nor a cron expression of five fields \
                 (minute hour day-of-month month day-of-week), e.g. '0 */6 * * *'"
            ));
        }
        let minutes = field(fields[0], "minute", 0, 59, &[])?;
        let hours = field(fields[1], "hour", 0, 23, &[])?;
        let days = field(fields[2], "day of month", 1, 31, &[])?;
        let months = field(fields[3], "month", 1, 12, &MONTHS)?;
        let mut weekdays = field(fields[4], "day of week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_restricted: fields[2] != "*",
            weekdays_restricted: fields[4] != "*",
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first matching minute strictly after `now`. Looks ahead up to
    /// five years (enough for 29 February); an expression that never matches,
    /// such as `0 0 31 2 *`, is refused when parsed.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.search(now).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn search(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = now.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut day = start.date_naive();
        let last = day + Duration::days(5 * 366);
        let mut first_minute = (start.hour(), start.minute());
        while day <= last {
            if self.months & (1 << day.month()) != 0 && self.day_matches(day) {
                for h in first_minute.0..24 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    let from = if h == first_minute.0 {
                        first_minute.1
                    } else {
                        0
                    };
                    if let Some(m) = (from..60).find(|m| self.minutes & (1 << m) != 0) {
                        return Utc.from_local_datetime(&day.and_hms_opt(h, m, 0)?).single();
                    }
                }
            }
            day = day.succ_opt()?;
            first_minute = (0, 0);
        }
        None
    }

    /// Refuses expressions that can never fire.
    fn check(self, text: &str) -> Result<Cron, String> {
        let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        match epoch.and_then(|e| self.search(e)) {
            Some(_) => Ok(self),
            None => Err(format!("the cron expression '{text}' never fires")),
        }
    }
}

/// One cron field as a bit set over `lo..=hi`.
fn field(text: &str, name: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let bad = |why: &str| format!("invalid {name} field '{text}' in the cron expression: {why}");
    let value = |v: &str| -> Result<u32, String> {
        let lower = v.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            // Month names count from 1, day names from 0.
            return Ok(i as u32 + lo);
        }
        match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(bad(&format!("'{v}' is not in {lo}-{hi}"))),
        }
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => match s.parse::<u32>() {
                Ok(n) if n > 0 => (r, n),
                _ => return Err(bad(&format!("step '{s}' must be a positive number"))),
            },
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            // "5/15" means from 5 to the end, every 15.
            (a, if part.contains('/') { hi } else { a })
        };
        if a > b {
            return Err(bad(&format!("range {a}-{b} runs backwards")));
        }
        for v in (a..=b).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Schedule::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn next(expr: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        expr.parse::<Schedule>().unwrap().next_after(None, now)
    }

    #[test]
    fn seconds_keep_to_their_grid() {
        let s: Schedule = "60".parse().unwrap();
        let now = at(2026, 1, 1, 0, 0, 0);
        assert_eq!(s.next_after(None, now), at(2026, 1, 1, 0, 1, 0));
        // Planned 10:00:00, run late at 10:00:20: the next is 10:01:00.
        let planned = at(2026, 1, 1, 10, 0, 0);
        assert_eq!(
            s.next_after(Some(planned), at(2026, 1, 1, 10, 0, 20)),
            at(2026, 1, 1, 10, 1, 0)
        );
        // Down for an hour: one run, then back on the grid.
        assert_eq!(
            s.next_after(Some(planned), at(2026, 1, 1, 11, 0, 30)),
            at(2026, 1, 1, 11, 1, 0)
        );
        // A planned run still ahead stays.
        assert_eq!(
            s.next_after(Some(planned), at(2026, 1, 1, 9, 0, 0)),
            planned
        );
    }

    #[test]
    fn cron_expressions_fire_when_cron_would() {
        let now = at(2026, 11, 25, 10, 54, 16); // a Wednesday
        assert_eq!(next("* * * * *", now), at(2026, 11, 25, 10, 55, 0));
        assert_eq!(next("*/15 * * * *", now), at(2026, 11, 25, 11, 0, 0));
        assert_eq!(next("0 */6 * * *", now), at(2026, 11, 25, 12, 0, 0));
        assert_eq!(next("30 2 * * *", now), at(2026, 11, 26, 2, 30, 0));
        assert_eq!(next("0 0 1 jan *", now), at(2027, 1, 1, 0, 0, 0));
        assert_eq!(next("0 9 * * mon-fri", now), at(2026, 11, 26, 9, 0, 0));
        assert_eq!(next("0 9 * * 0", now), at(2026, 11, 29, 9, 0, 0));
        assert_eq!(next("0 9 * * 7", now), at(2026, 11, 29, 9, 0, 0));
        assert_eq!(next("5/20 10 * * *", now), at(2026, 11, 26, 10, 5, 0));
        assert_eq!(next("0 0 29 2 *", now), at(2028, 2, 29, 0, 0, 0));
        // Both day fields restricted: either matches (the 1st, or a Friday).
        assert_eq!(next("0 0 1 * fri", now), at(2026, 11, 27, 0, 0, 0));
        // Exactly on a matching minute: the next one, never the same.
        assert_eq!(
            next("55 10 * * *", at(2026, 11, 25, 10, 55, 0)),
            at(2026, 11, 26, 10, 55, 0)
        );
    }

    #[test]
    fn bad_intervals_say_what_is_wrong() {
        for (text, words) in [
            ("0", "between 1 and"),
            ("99999999999", "between 1 and"),
            ("every hour", "five fields"),
            ("* * * *", "five fields"),
            ("60 * * * *", "minute field"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("10-5 * * * *", "backwards"),
            ("0 0 31 2 *", "never fires"),
            ("-1", "five fields"),
        ] {
            let err = text.parse::<Schedule>().unwrap_err();
            assert!(err.contains(words), "{text}: {err}");
        }
    }
}
