//! Fare products and the concession a rider is entitled to. Prices come from the one network
//! table (`congdan_core::tickets::network`, shared with the gates); the concession comes only
//! from the account's verified identity attributes (`identity::attributes`), never from what a
//! phone sends.

use congdan_core::drafts::validation::CalendarDate;
use congdan_core::tickets::network::{self, LINE_1};
use congdan_core::tickets::wire::{Concession, Product};
use serde::Serialize;

use crate::identity::attributes::VerifiedAttributes;

/// Older riders travel free from this age.
pub const ELDERLY_FROM_AGE: u32 = 60;
/// Children travel free below this age.
pub const CHILD_BELOW_AGE: u32 = 6;

fn names(product: Product) -> (&'static str, &'static str) {
    match product {
        Product::SingleJourney => ("Vé lượt", "Single journey"),
        Product::DayPass => ("Vé 1 ngày", "Day pass"),
        Product::ThreeDayPass => ("Vé 3 ngày", "3-day pass"),
        Product::MonthlyPass => ("Vé tháng", "Monthly pass"),
    }
}

/// The concession verified attributes give on `today` (Vietnam's date). Free fares first: a
/// child, an older rider or a rider with a disability pays nothing whatever else holds; then a
/// student still enrolled pays half.
pub fn concession_for(attributes: &VerifiedAttributes, today: CalendarDate) -> Option<Concession> {
    let age = attributes.age_on(today);
    if age.is_some_and(|a| a < CHILD_BELOW_AGE) {
        Some(Concession::ChildUnder6)
    } else if age.is_some_and(|a| a >= ELDERLY_FROM_AGE) {
        Some(Concession::Elderly)
    } else if attributes.disability {
        Some(Concession::Disability)
    } else if attributes.is_student_on(today) {
        Some(Concession::Student)
    } else {
        None
    }
}

#[derive(Serialize)]
pub struct ProductView {
    pub product: u64,
    /// `single`, `day`, `three-day`, `monthly`: accepted in a purchase too.
    pub name: &'static str,
    pub name_vi: &'static str,
    pub name_en: &'static str,
    /// Passes: the price for this rider. Absent for single journeys (see `fares`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_vnd: Option<u64>,
    pub valid_secs: u64,
}

#[derive(Serialize)]
pub struct FareView {
    pub origin: u64,
    pub destination: u64,
    pub price_vnd: u64,
}

#[derive(Serialize)]
pub struct StationView {
    pub id: u64,
    pub name_vi: &'static str,
    pub name_en: &'static str,
    pub position_m: u32,
}

/// `GET /v1/tickets/products`: every product with this rider's price.
#[derive(Serialize)]
pub struct Catalogue {
    /// The concession applied to every price below (`null`: full fare).
    pub concession: Option<&'static str>,
    pub products: Vec<ProductView>,
    /// Single journey prices for every pair of stations (one direction; the fare is symmetric).
    pub fares: Vec<FareView>,
    pub stations: Vec<StationView>,
}

pub fn catalogue(concession: Option<Concession>) -> Catalogue {
    let products = Product::ALL
        .into_iter()
        .map(|p| {
            let (name_vi, name_en) = names(p);
            ProductView {
                product: p.code(),
                name: p.name(),
                name_vi,
                name_en,
                price_vnd: network::product_price(p, concession).ok(),
                valid_secs: p.validity_seconds(),
            }
        })
        .collect();
    let mut fares = Vec::new();
    for from in LINE_1.iter() {
        for to in LINE_1.iter().filter(|s| s.id > from.id) {
            if let Ok(price_vnd) = network::single_fare(from.id, to.id, concession) {
                fares.push(FareView { origin: from.id, destination: to.id, price_vnd });
            }
        }
    }
    let stations = LINE_1
        .iter()
        .map(|s| StationView { id: s.id, name_vi: s.name_vi, name_en: s.name_en, position_m: s.position_m })
        .collect();
    Catalogue { concession: concession.map(Concession::name), products, fares, stations }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn born(date: &str) -> VerifiedAttributes {
        VerifiedAttributes { birthdate: Some(date.into()), ..Default::default() }
    }

    #[test]
    fn concessions_come_from_age_status_and_disability() {
        let today = CalendarDate::parse("2026-11-24").unwrap();
        assert_eq!(concession_for(&VerifiedAttributes::default(), today), None);
        assert_eq!(concession_for(&born("1990-01-01"), today), None);
        assert_eq!(concession_for(&born("1966-11-24"), today), Some(Concession::Elderly));
        assert_eq!(concession_for(&born("1966-11-25"), today), None, "59 until tomorrow");
        assert_eq!(concession_for(&born("2020-11-25"), today), Some(Concession::ChildUnder6));
        assert_eq!(concession_for(&born("2020-11-24"), today), None, "6 today");
        let student = VerifiedAttributes { student_until: Some("2027-06-30".into()), ..born("2005-01-01") };
        assert_eq!(concession_for(&student, today), Some(Concession::Student));
        let lapsed = VerifiedAttributes { student_until: Some("2026-06-30".into()), ..born("2005-01-01") };
        assert_eq!(concession_for(&lapsed, today), None);
        let both = VerifiedAttributes { disability: true, ..student };
        assert_eq!(concession_for(&both, today), Some(Concession::Disability), "free beats half");
    }

    #[test]
    fn catalogue_prices_for_the_rider() {
        let full = catalogue(None);
        assert_eq!(full.products.iter().map(|p| p.price_vnd).collect::<Vec<_>>(), [None, Some(40_000), Some(90_000), Some(300_000)]);
        assert_eq!(full.fares.len(), 14 * 13 / 2);
        assert_eq!(full.stations.len(), 14);
        let student = catalogue(Some(Concession::Student));
        assert_eq!(student.products[3].price_vnd, Some(150_000));
        assert_eq!(student.concession, Some("student"));
        assert!(catalogue(Some(Concession::Elderly)).fares.iter().all(|f| f.price_vnd == 0));
    }
}
