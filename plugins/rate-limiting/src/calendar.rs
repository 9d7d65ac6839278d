//! The periods of a rate limit as Kong's `timestamp.get_timestamps` cuts them, in UTC: a second,
//! minute, hour and day are fixed spans; a month and a year are calendar ones (a window starts on
//! the 1st, or on January 1st, at 00:00:00). Days to dates by Howard Hinnant's civil calendar
//! algorithms, valid for every `i64` second the clock can give.

/// Kong's six periods, shortest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

impl Period {
    pub const ALL: [Period; 6] =
        [Period::Second, Period::Minute, Period::Hour, Period::Day, Period::Month, Period::Year];

    /// The name in Kong's configuration and counter keys.
    pub fn name(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// The suffix of Kong's `X-RateLimit-*-<Period>` headers.
    pub fn title(self) -> &'static str {
        match self {
            Period::Second => "Second",
            Period::Minute => "Minute",
            Period::Hour => "Hour",
            Period::Day => "Day",
            Period::Month => "Month",
            Period::Year => "Year",
        }
    }

    /// The window `now` (seconds since the epoch) falls in: its first second and the first second
    /// after it.
    pub fn window(self, now: i64) -> (i64, i64) {
        let fixed = |span: i64| {
            let start = now - now.rem_euclid(span);
            (start, start.saturating_add(span))
        };
        match self {
            Period::Second => (now, now.saturating_add(1)),
            Period::Minute => fixed(60),
            Period::Hour => fixed(3600),
            Period::Day => fixed(86_400),
            Period::Month => {
                let (year, month, _) = civil_from_days(now.div_euclid(86_400));
                let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                (midnight(year, month, 1), midnight(next_year, next_month, 1))
            }
            Period::Year => {
                let (year, _, _) = civil_from_days(now.div_euclid(86_400));
                (midnight(year, 1, 1), midnight(year + 1, 1, 1))
            }
        }
    }
}

fn midnight(year: i64, month: u32, day: u32) -> i64 {
    days_from_civil(year, month, day).saturating_mul(86_400)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2024-02-29T13:45:30Z, a leap day.
    const LEAP_DAY: i64 = 1_709_214_330;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(LEAP_DAY / 86_400), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn windows_are_kongs_periods_in_utc() {
        let now = LEAP_DAY;
        assert_eq!(Period::Second.window(now), (now, now + 1));
        assert_eq!(Period::Minute.window(now), (now - 30, now + 30));
        assert_eq!(Period::Hour.window(now), (now - 45 * 60 - 30, now + 14 * 60 + 30));
        let midnight = 1_709_164_800; // 2024-02-29T00:00:00Z
        assert_eq!(Period::Day.window(now), (midnight, midnight + 86_400));
        // February 2024 has 29 days; March 1st starts the next window.
        assert_eq!(Period::Month.window(now), (1_706_745_600, 1_709_251_200));
        assert_eq!(Period::Year.window(now), (1_704_067_200, 1_735_689_600));
        // December rolls over into January of the next year.
        let december = 1_734_998_400; // 2024-12-24T00:00:00Z
        assert_eq!(Period::Month.window(december), (1_733_011_200, 1_735_689_600));
    }

    proptest! {
        #[test]
        fn days_and_dates_round_trip(days in -100_000_000i64..100_000_000) {
            let (year, month, day) = civil_from_days(days);
            prop_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            prop_assert_eq!(days_from_civil(year, month, day), days);
        }

        #[test]
        fn every_window_holds_now_and_starts_on_its_boundary(now in -5_000_000_000i64..50_000_000_000) {
            let mut previous = (now, now + 1);
            for period in Period::ALL {
                let (start, end) = period.window(now);
                prop_assert!(start <= now && now < end);
                prop_assert!(start <= previous.0 && previous.1 <= end, "{:?} holds the shorter window", period);
                previous = (start, end);
            }
            let (start, end) = Period::Month.window(now);
            prop_assert_eq!(civil_from_days(start.div_euclid(86_400)).2, 1);
            prop_assert!((28 * 86_400..=31 * 86_400).contains(&(end - start)));
            let (start, end) = Period::Year.window(now);
            prop_assert_eq!(civil_from_days(start.div_euclid(86_400)).1, 1);
            prop_assert!(end - start == 365 * 86_400 || end - start == 366 * 86_400);
        }
    }
}
