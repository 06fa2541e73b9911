//! The module aggregate against a model (M3, M8): random sequences of tag, attachment, external
//! use and delete commands. Deletion is refused exactly while the model has dependants, the
//! refusal lists exactly the model's dependants, and replaying the log rebuilds the same state.

mod config_support;

use chat_core::config::{
    AdminCommand, AttachmentFlags, ConfigRejection, Dependant, ExternalUse, ModuleCommand,
    ModuleDecider, ModuleSettings, ModuleState,
};
use chat_core::{ChatId, Decider, ModuleId, StrategyId};
use config_support::{ADMIN, cases, now};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
enum Op {
    AddTag(u8),
    RemoveTag(u8),
    Attach(u8),
    Detach(u8),
    Register(u8),
    Release(u8),
    Delete(Vec<u8>),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4).prop_map(Op::AddTag),
        (0u8..4).prop_map(Op::RemoveTag),
        (0u8..4).prop_map(Op::Attach),
        (0u8..4).prop_map(Op::Detach),
        (0u8..4).prop_map(Op::Register),
        (0u8..4).prop_map(Op::Release),
        prop::collection::vec(0u8..3, 0..3).prop_map(Op::Delete),
    ]
}

#[derive(Default)]
struct Model {
    tags: BTreeSet<u8>,
    strategies: BTreeSet<u8>,
    uses: BTreeSet<u8>,
    deleted: bool,
}

fn external(n: u8) -> ExternalUse {
    ExternalUse {
        kind: "sms_campaign".into(),
        id: format!("c{n}"),
    }
}

fn strategy(n: u8) -> StrategyId {
    StrategyId::from_u128(u128::from(n) + 10)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn m8_delete_is_refused_exactly_while_dependants_exist(ops in prop::collection::vec(arb_op(), 1..40)) {
        let id = ModuleId::from_u128(1);
        let create = AdminCommand::new(ADMIN, ModuleCommand::Create {
            id,
            reference: "m".into(),
            settings: ModuleSettings::named("m"),
        });
        let mut log = ModuleDecider::decide(&ModuleState::default(), &create, now()).unwrap();
        let mut model = Model::default();
        for op in ops {
            let state = ModuleDecider::replay(&log);
            let command = match &op {
                Op::AddTag(n) => ModuleCommand::AddTag { tag: format!("t{n}") },
                Op::RemoveTag(n) => ModuleCommand::RemoveTag { tag: format!("t{n}") },
                Op::Attach(n) => ModuleCommand::AttachStrategy { strategy: strategy(*n), flags: AttachmentFlags::default() },
                Op::Detach(n) => ModuleCommand::DetachStrategy { strategy: strategy(*n) },
                Op::Register(n) => ModuleCommand::RegisterUse { external: external(*n) },
                Op::Release(n) => ModuleCommand::ReleaseUse { external: external(*n) },
                Op::Delete(chats) => ModuleCommand::Delete {
                    open_chats: chats.iter().map(|c| ChatId::from_u128(u128::from(*c))).collect(),
                },
            };
            let result = ModuleDecider::decide(&state, &AdminCommand::new(ADMIN, command), now());
            if model.deleted {
                prop_assert_eq!(result, Err(ConfigRejection::Deleted { object: "module" }));
                continue;
            }
            let accepted = match &op {
                Op::AddTag(n) => model.tags.insert(*n),
                Op::RemoveTag(n) => model.tags.remove(n),
                Op::Attach(n) => model.strategies.insert(*n),
                Op::Detach(n) => model.strategies.remove(n),
                Op::Register(n) => model.uses.insert(*n),
                Op::Release(n) => model.uses.remove(n),
                Op::Delete(chats) => {
                    let mut expected: Vec<Dependant> = model
                        .strategies
                        .iter()
                        .map(|s| Dependant::Strategy(strategy(*s)))
                        .chain(chats.iter().map(|c| Dependant::OpenChat(ChatId::from_u128(u128::from(*c)))))
                        .chain(model.uses.iter().map(|u| Dependant::ExternalUse(external(*u))))
                        .collect();
                    expected.sort();
                    expected.dedup();
                    if expected.is_empty() {
                        model.deleted = true;
                        true
                    } else {
                        prop_assert_eq!(
                            result.clone(),
                            Err(ConfigRejection::HasDependants { dependants: expected })
                        );
                        false
                    }
                }
            };
            match result {
                Ok(events) => {
                    prop_assert!(accepted, "{:?} accepted but the model refuses it", op);
                    prop_assert_eq!(events.len(), 1);
                    log.extend(events);
                }
                Err(rejection) => prop_assert!(!accepted, "{:?} refused: {}", op, rejection),
            }
            let module = ModuleDecider::replay(&log);
            let live = module.module.as_ref().unwrap();
            prop_assert_eq!(module.deleted, model.deleted);
            prop_assert_eq!(live.tags.len(), model.tags.len());
            prop_assert_eq!(live.strategies.len(), model.strategies.len());
            prop_assert_eq!(live.external_uses.len(), model.uses.len());
        }
    }
}
