//! Weekly maintenance windows: a day, a 24-hour time and a time zone (`UTC`, an offset
//! like `+02:00`, or an IANA `Area/City`). Pending changes are applied in the two hours
//! after the window opens, as on Amazon MQ.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone, Utc, Weekday};

/// How long a window stays open.
pub const WINDOW_LENGTH: Duration = Duration::hours(2);

/// A parsed time zone.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

pub fn parse_zone(tz: &str) -> Option<Zone> {
    if tz == "UTC" || tz == "Z" {
        return Some(Zone::Fixed(FixedOffset::east_opt(0)?));
    }
    if let Ok(t) = DateTime::parse_from_str(&format!("2000-01-01 00:00 {tz}"), "%Y-%m-%d %H:%M %:z")
    {
        return Some(Zone::Fixed(*t.offset()));
    }
    tz.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
}

/// `DayOfWeek` on the wire, Monday first.
pub const DAY_NAMES: [&str; 7] = [
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
];

/// The wire name of a weekday.
pub fn day_name(day: Weekday) -> &'static str {
    DAY_NAMES[day.num_days_from_monday() as usize]
}

pub fn parse_day(day: &str) -> Option<Weekday> {
    Some(match day {
        "MONDAY" => Weekday::Mon,
        "TUESDAY" => Weekday::Tue,
        "WEDNESDAY" => Weekday::Wed,
        "THURSDAY" => Weekday::Thu,
        "FRIDAY" => Weekday::Fri,
        "SATURDAY" => Weekday::Sat,
        "SUNDAY" => Weekday::Sun,
        _ => return None,
    })
}

/// The most recent opening of the window at or before `now`.
pub fn last_window_start(
    day: Weekday,
    time: NaiveTime,
    zone: Zone,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    fn in_zone<Z: TimeZone>(
        z: &Z,
        day: Weekday,
        time: NaiveTime,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let local_today = now.with_timezone(z).date_naive();
        let back =
            (7 + local_today.weekday().num_days_from_monday() - day.num_days_from_monday()) % 7;
        for weeks in 0..3 {
            let date = local_today - Duration::days(i64::from(back) + 7 * weeks);
            // A time skipped by a DST jump opens the window at the first valid instant.
            let local = date.and_time(time);
            let start = z
                .from_local_datetime(&local)
                .earliest()
                .or_else(|| {
                    z.from_local_datetime(&(local + Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc));
            if let Some(start) = start.filter(|s| *s <= now) {
                return start;
            }
        }
        now - Duration::days(7)
    }
    match zone {
        Zone::Fixed(z) => in_zone(&z, day, time, now),
        Zone::Named(z) => in_zone(&z, day, time, now),
    }
}

/// Whether `now` lies in an open window that has not been used yet.
pub fn window_due(
    day: &str,
    time: &str,
    tz: &str,
    last_maintenance: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let day = parse_day(day)?;
    let time = NaiveTime::parse_from_str(time, "%H:%M").ok()?;
    let zone = parse_zone(tz)?;
    let start = last_window_start(day, time, zone, now);
    let open = now - start < WINDOW_LENGTH;
    let unused = last_maintenance.is_none_or(|l| l < start);
    (open && unused).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn finds_the_last_opening_in_utc_offsets_and_named_zones() {
        // 2026-11-25 is a Wednesday.
        let now = utc("2026-11-25T10:30:00Z");
        let t = NaiveTime::from_hms_opt(10, 0, 0).unwrap();
        assert_eq!(
            last_window_start(Weekday::Wed, t, parse_zone("UTC").unwrap(), now),
            utc("2026-11-25T10:00:00Z")
        );
        assert_eq!(
            last_window_start(Weekday::Thu, t, parse_zone("UTC").unwrap(), now),
            utc("2026-11-19T10:00:00Z")
        );
        // 10:00 in Berlin (UTC+1 in November) is 09:00 UTC.
        assert_eq!(
            last_window_start(Weekday::Wed, t, parse_zone("Europe/Berlin").unwrap(), now),
            utc("2026-11-25T09:00:00Z")
        );
        assert_eq!(
            last_window_start(Weekday::Wed, t, parse_zone("+05:00").unwrap(), now),
            utc("2026-11-25T05:00:00Z")
        );
        assert!(parse_zone("Mars/Olympus").is_none());
    }

    #[test]
    fn dst_gap_opens_at_the_first_valid_instant() {
        // Europe/Berlin skips 02:00-03:00 on Sunday 2026-03-29.
        let t = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let start = last_window_start(
            Weekday::Sun,
            t,
            parse_zone("Europe/Berlin").unwrap(),
            utc("2026-03-29T12:00:00Z"),
        );
        assert_eq!(start, utc("2026-03-29T01:30:00Z"));
    }

    #[test]
    fn a_window_is_used_once_and_only_while_open() {
        let now = utc("2026-11-25T10:30:00Z");
        assert_eq!(
            window_due("WEDNESDAY", "10:00", "UTC", None, now),
            Some(utc("2026-11-25T10:00:00Z"))
        );
        assert_eq!(
            window_due(
                "WEDNESDAY",
                "10:00",
                "UTC",
                Some(utc("2026-11-25T10:00:05Z")),
                now
            ),
            None
        );
        assert!(window_due(
            "WEDNESDAY",
            "10:00",
            "UTC",
            Some(utc("2026-11-18T10:00:05Z")),
            now
        )
        .is_some());
        assert_eq!(
            window_due("WEDNESDAY", "08:00", "UTC", None, now),
            None,
            "closed after two hours"
        );
    }
}
