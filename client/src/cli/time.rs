//! Timestamps as people type and read them: RFC 3339 in, RFC 3339 (UTC, milliseconds) out.
//!
//! Kafka timestamps are ms since the Unix epoch; the conversions use the proleptic Gregorian
//! calendar (days-from-civil), which is all RFC 3339 needs, so no date crate is pulled in.

/// Parses `--from-timestamp` / `--to-datetime`: ms since the epoch (digits only), or RFC 3339
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. A date alone (`YYYY-MM-DD`) means its UTC
/// midnight.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map_err(|_| format!("{text:?} is too large for ms since the epoch"));
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!(
            "{text:?} is neither ms since the epoch nor an RFC 3339 time such as \
             2026-01-31T12:00:00Z or 2026-01-31T14:00:00+02:00"
        )
    })
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if bytes.len() == 10 {
        return Some(days * MS_PER_DAY);
    }
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first_three = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = first_three.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &rest[1..];
            if zone.len() != 5 || zone.as_bytes()[2] != b':' {
                return None;
            }
            let hours: i64 = zone[..2].parse().ok()?;
            let minutes: i64 = zone[3..].parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

const MS_PER_DAY: i64 = 86_400_000;

/// `2026-01-31T12:00:00.000Z` for ms since the epoch.
pub fn format_timestamp_ms(timestamp_ms: i64) -> String {
    let days = timestamp_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = timestamp_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = ms_of_day / 1_000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        ms_of_day % 1_000
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01; inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_in_every_accepted_shape() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_timestamp_ms("1700000000123"), Ok(1_700_000_000_123));
        // 2023-11-14T22:13:20Z is 1_700_000_000 s.
        assert_eq!(
            parse_timestamp_ms("2023-11-14T22:13:20.123Z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_ms("2023-11-15T00:13:20.1+02:00"),
            Ok(1_700_000_000_100)
        );
        assert_eq!(
            parse_timestamp_ms("2023-11-14T21:13:20-01:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_timestamp_ms("2000-03-01"), Ok(951_868_800_000));
        assert_eq!(parse_timestamp_ms("1969-12-31T23:59:59Z"), Ok(-1_000));
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in [
            "",
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20.Z",
            "-5",
        ] {
            assert!(parse_timestamp_ms(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(
            parse_timestamp_ms("2024-02-29T00:00:00Z").is_ok(),
            "leap day"
        );
    }

    #[test]
    fn formatting_inverts_parsing() {
        assert_eq!(format_timestamp_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp_ms(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(format_timestamp_ms(-1_000), "1969-12-31T23:59:59.000Z");
        for ms in [0, 951_868_800_000, 1_709_164_800_000, 4_102_444_800_999] {
            assert_eq!(parse_timestamp_ms(&format_timestamp_ms(ms)), Ok(ms));
        }
    }
}
