//! The reservation aggregate against a model (M2): whatever sequence of reserve and release
//! commands arrives, a reference has at most one holder, only the holder releases it, and the
//! decider's refusals are exactly the model's.

mod config_support;

use chat_core::Decider;
use chat_core::config::{
    AdminCommand, ConfigRejection, ReferenceKind, Reservation, ReservationCommand,
};
use config_support::{ADMIN, cases, now};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Op {
    Reserve(u8),
    Release(u8),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3).prop_map(Op::Reserve),
        (0u8..3).prop_map(Op::Release)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn m2_a_reference_has_at_most_one_holder(ops in prop::collection::vec(arb_op(), 1..30)) {
        let mut log = Vec::new();
        let mut model: Option<u8> = None;
        for op in ops {
            let state = Reservation::replay(&log);
            prop_assert_eq!(state.holder, model.map(|o| Uuid::from_u128(u128::from(o))));
            let command = match op {
                Op::Reserve(owner) => ReservationCommand::Reserve {
                    kind: ReferenceKind::Module,
                    reference: "Sales".into(),
                    owner: Uuid::from_u128(u128::from(owner)),
                },
                Op::Release(owner) => ReservationCommand::Release {
                    owner: Uuid::from_u128(u128::from(owner)),
                },
            };
            let result = Reservation::decide(&state, &AdminCommand::new(ADMIN, command), now());
            match (op, model) {
                (Op::Reserve(owner), None) => {
                    prop_assert_eq!(result.as_ref().map(Vec::len), Ok(1));
                    model = Some(owner);
                }
                (Op::Reserve(owner), Some(holder)) if owner == holder => {
                    prop_assert_eq!(result.as_ref().map(Vec::len), Ok(0));
                }
                (Op::Reserve(_), Some(_)) => {
                    prop_assert_eq!(
                        result.clone(),
                        Err(ConfigRejection::DuplicateReference { reference: "Sales".into() })
                    );
                }
                (Op::Release(owner), Some(holder)) if owner == holder => {
                    prop_assert_eq!(result.as_ref().map(Vec::len), Ok(1));
                    model = None;
                }
                (Op::Release(_), _) => {
                    let refused = matches!(result, Err(ConfigRejection::Missing { .. }));
                    prop_assert!(refused, "release by a non-holder: {:?}", result);
                }
            }
            log.extend(result.unwrap_or_default());
        }
    }
}
