//! Trigger strategies (T1–T4): when the widget shows itself on a page.
//!
//! A strategy is defined once (`strategy-<uuid>`) and attached to modules; each attachment's
//! display/open flags live on the module (T3). The strategy records which modules link to it so
//! that its deletion can be refused while it is attached (T4). [`evaluate`] is the pure function
//! the widget endpoint calls on every page view.

use super::common::{
    ConfigRejection, Dependant, URL_CHARS_MAX, check_absent, check_count, check_key, check_name,
    check_reference, check_text, live, stamped_decider,
};
use super::module::Module;
use super::schedule::Schedule;
use crate::{EventKind, ModuleId, StrategyId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most rules in one strategy.
pub const RULES_PER_STRATEGY_MAX: usize = 20;
/// Most modules one strategy may be attached to.
pub const MODULES_PER_STRATEGY_MAX: usize = 1000;
/// Longest time-on-page a rule may wait for, in seconds (a day).
pub const TIME_ON_PAGE_S_MAX: u32 = 86_400;
/// Highest page count a rule may ask for.
pub const PAGES_VIEWED_MAX: u32 = 10_000;
/// Most custom events the widget reports for one visitor context.
pub const VISITOR_EVENTS_MAX: usize = 100;

/// How a URL rule compares the page URL (case-sensitive, whole URL including the query).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UrlMatch {
    /// The URL is exactly this.
    Exact(String),
    /// The URL starts with this.
    Prefix(String),
    /// The URL matches this glob (`*` any run, `?` one character).
    Glob(String),
}

/// One condition on the visitor (T2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// The page URL.
    Url(UrlMatch),
    /// At least this long on the current page.
    TimeOnPage {
        /// Seconds.
        seconds_min: u32,
    },
    /// At least this many pages viewed in the visit.
    PagesViewed {
        /// Pages.
        pages_min: u32,
    },
    /// The visitor has (or has not) been here before.
    ReturningVisitor {
        /// `true`: only returning visitors; `false`: only first-time visitors.
        returning: bool,
    },
    /// Now is inside these working intervals (in the schedule's own time zone, so a strategy
    /// shared by modules in different zones means one thing).
    TimeWindow(Schedule),
    /// The page sent this named event ("does some actions you define").
    CustomEvent {
        /// The event's name (a key).
        name: String,
    },
}

/// How rules combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Combinator {
    /// Every rule must hold.
    All,
    /// At least one rule must hold.
    Any,
}

/// A strategy's condition: non-empty rules combined with all/any (T2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// All or any.
    pub combinator: Combinator,
    /// The rules.
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Checks every rule and limit.
    pub fn validate(&self) -> Result<(), ConfigRejection> {
        if self.rules.is_empty() {
            return Err(ConfigRejection::Empty {
                field: "rules".to_owned(),
            });
        }
        check_count("rules", self.rules.len(), RULES_PER_STRATEGY_MAX)?;
        for rule in &self.rules {
            match rule {
                Rule::Url(UrlMatch::Exact(p) | UrlMatch::Prefix(p) | UrlMatch::Glob(p)) => {
                    check_text("url rule", p, URL_CHARS_MAX)?;
                    if p.is_empty() {
                        return Err(ConfigRejection::Empty {
                            field: "url rule".to_owned(),
                        });
                    }
                }
                Rule::TimeOnPage { seconds_min } => {
                    check_at_most("time on page", *seconds_min, TIME_ON_PAGE_S_MAX)?;
                }
                Rule::PagesViewed { pages_min } => {
                    check_at_most("pages viewed", *pages_min, PAGES_VIEWED_MAX)?;
                }
                Rule::ReturningVisitor { .. } => {}
                Rule::TimeWindow(schedule) => schedule.hours.validate()?,
                Rule::CustomEvent { name } => check_key("custom event", name)?,
            }
        }
        Ok(())
    }

    /// Whether the visitor satisfies the rule set at `now`.
    pub fn matches(&self, visitor: &VisitorContext, now: DateTime<Utc>) -> bool {
        let mut results = self
            .rules
            .iter()
            .map(|rule| rule_matches(rule, visitor, now));
        match self.combinator {
            Combinator::All => results.all(|m| m),
            Combinator::Any => results.any(|m| m),
        }
    }
}

fn check_at_most(field: &str, value: u32, max: u32) -> Result<(), ConfigRejection> {
    if value > max {
        return Err(ConfigRejection::OutOfRange {
            field: field.to_owned(),
            min: 0,
            max: u64::from(max),
            value: u64::from(value),
        });
    }
    Ok(())
}

fn rule_matches(rule: &Rule, visitor: &VisitorContext, now: DateTime<Utc>) -> bool {
    match rule {
        Rule::Url(UrlMatch::Exact(url)) => visitor.url == *url,
        Rule::Url(UrlMatch::Prefix(prefix)) => visitor.url.starts_with(prefix.as_str()),
        Rule::Url(UrlMatch::Glob(glob)) => super::common::glob_matches(glob, &visitor.url),
        Rule::TimeOnPage { seconds_min } => visitor.time_on_page_s >= *seconds_min,
        Rule::PagesViewed { pages_min } => visitor.pages_viewed >= *pages_min,
        Rule::ReturningVisitor { returning } => visitor.returning == *returning,
        Rule::TimeWindow(schedule) => schedule.is_open(now),
        Rule::CustomEvent { name } => visitor.events.contains(name),
    }
}

/// What the widget knows about the visitor on this page view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorContext {
    /// The page URL.
    pub url: String,
    /// Seconds on the current page.
    pub time_on_page_s: u32,
    /// Pages viewed in this visit, including this one.
    pub pages_viewed: u32,
    /// Whether the visitor has been here before.
    pub returning: bool,
    /// Custom events the page has sent (at most [`VISITOR_EVENTS_MAX`] keys; see
    /// [`VisitorContext::check`]).
    pub events: BTreeSet<String>,
}

impl VisitorContext {
    /// Checks what the widget reported against its limits (the service calls this on every
    /// request before [`evaluate`]): URL length, number and shape of custom events.
    pub fn check(&self) -> Result<(), ConfigRejection> {
        check_text("url", &self.url, URL_CHARS_MAX)?;
        check_count("events", self.events.len(), VISITOR_EVENTS_MAX)?;
        for event in &self.events {
            check_key("custom event", event)?;
        }
        Ok(())
    }
}

/// What the widget does (T4). Ordered: a stronger outcome wins over a weaker one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Display {
    /// Show nothing.
    Hidden,
    /// Show the chat icon.
    ShowIcon,
    /// Open the whole chat.
    OpenChat,
}

/// Why [`evaluate`] decided what it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// No strategy attached: the widget shows its icon, as if attached with the default flags.
    NoStrategyAttached,
    /// Strategies are attached but none matched.
    NoStrategyMatched,
    /// This strategy matched and its flags gave the outcome.
    Matched(StrategyId),
}

/// The outcome of [`evaluate`] with its reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What the widget does.
    pub display: Display,
    /// Why.
    pub reason: Reason,
}

/// T4: what the widget does for `visitor` on a page of `module` at `now`, given the strategies
/// the host loaded (strategies not attached to the module are ignored; an attached one that is
/// missing from `strategies` counts as not matching).
///
/// Every matching attachment gives an outcome from its flags (open → open chat, else display →
/// show icon); the strongest wins, ties going to the lowest strategy id so that the reason is
/// deterministic.
pub fn evaluate(
    module: &Module,
    strategies: &[Strategy],
    visitor: &VisitorContext,
    now: DateTime<Utc>,
) -> Decision {
    if module.strategies.is_empty() {
        return Decision {
            display: Display::ShowIcon,
            reason: Reason::NoStrategyAttached,
        };
    }
    let mut best = Decision {
        display: Display::Hidden,
        reason: Reason::NoStrategyMatched,
    };
    for (id, flags) in &module.strategies {
        let Some(strategy) = strategies.iter().find(|s| s.id == *id) else {
            continue;
        };
        if !strategy.rules.matches(visitor, now) {
            continue;
        }
        let display = if flags.open {
            Display::OpenChat
        } else if flags.display {
            Display::ShowIcon
        } else {
            Display::Hidden
        };
        if best.reason == Reason::NoStrategyMatched || display > best.display {
            best = Decision {
                display,
                reason: Reason::Matched(*id),
            };
        }
    }
    best
}

/// A live trigger strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strategy {
    /// Its id.
    pub id: StrategyId,
    /// Its name.
    pub name: String,
    /// Its reference (unique among strategies).
    pub reference: String,
    /// Its condition.
    pub rules: RuleSet,
    /// The modules it is attached to (T4).
    pub modules: BTreeSet<ModuleId>,
}

/// The state of a strategy stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StrategyState {
    /// The strategy, once created.
    pub strategy: Option<Strategy>,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// What an admin can ask of a strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrategyCommand {
    /// T1: define a strategy (the host reserves the reference in the same append).
    Create {
        /// Minted by the host.
        id: StrategyId,
        /// Its name.
        name: String,
        /// Its reference.
        reference: String,
        /// Its condition.
        rules: RuleSet,
    },
    /// Edit the name and the rules.
    Update {
        /// The new name.
        name: String,
        /// The new rules.
        rules: RuleSet,
    },
    /// Record that a module attached this strategy (appended with the module's attachment).
    LinkModule {
        /// The module.
        module: ModuleId,
    },
    /// Record that a module detached this strategy.
    UnlinkModule {
        /// The module.
        module: ModuleId,
    },
    /// T4: delete, refused while attached.
    Delete,
}

/// What happened to a strategy. Stored inside [`Stamped`](super::Stamped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrategyEvent {
    /// The strategy exists.
    Created {
        /// Its id.
        id: StrategyId,
        /// Its name.
        name: String,
        /// Its reference.
        reference: String,
        /// Its rules.
        rules: RuleSet,
    },
    /// Name or rules changed.
    Updated {
        /// The new name.
        name: String,
        /// The new rules.
        rules: RuleSet,
    },
    /// A module attached it.
    ModuleLinked {
        /// The module.
        module: ModuleId,
    },
    /// A module detached it.
    ModuleUnlinked {
        /// The module.
        module: ModuleId,
    },
    /// Deleted.
    Deleted,
}

impl EventKind for StrategyEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "StrategyCreated",
            Self::Updated { .. } => "StrategyUpdated",
            Self::ModuleLinked { .. } => "StrategyModuleLinked",
            Self::ModuleUnlinked { .. } => "StrategyModuleUnlinked",
            Self::Deleted => "StrategyDeleted",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

/// The aggregate's decider (the state type is [`StrategyState`]).
#[derive(Debug)]
pub enum StrategyDecider {}

stamped_decider!(StrategyDecider {
    state: StrategyState,
    command: StrategyCommand,
    event: StrategyEvent,
    decide: decide,
    evolve: evolve,
});

fn decide(
    state: &StrategyState,
    command: &StrategyCommand,
) -> Result<Vec<StrategyEvent>, ConfigRejection> {
    const OBJECT: &str = "trigger strategy";
    if let StrategyCommand::Create {
        id,
        name,
        reference,
        rules,
    } = command
    {
        check_absent(OBJECT, state.strategy.as_ref())?;
        check_name("name", name)?;
        check_reference(reference)?;
        rules.validate()?;
        return Ok(vec![StrategyEvent::Created {
            id: *id,
            name: name.clone(),
            reference: reference.clone(),
            rules: rules.clone(),
        }]);
    }
    let strategy = live(OBJECT, state.strategy.as_ref(), state.deleted)?;
    Ok(match command {
        StrategyCommand::Create { .. } => vec![],
        StrategyCommand::Update { name, rules } => {
            check_name("name", name)?;
            rules.validate()?;
            if *name == strategy.name && *rules == strategy.rules {
                vec![]
            } else {
                vec![StrategyEvent::Updated {
                    name: name.clone(),
                    rules: rules.clone(),
                }]
            }
        }
        StrategyCommand::LinkModule { module } => {
            if strategy.modules.contains(module) {
                vec![]
            } else {
                check_count(
                    "modules",
                    strategy.modules.len() + 1,
                    MODULES_PER_STRATEGY_MAX,
                )?;
                vec![StrategyEvent::ModuleLinked { module: *module }]
            }
        }
        StrategyCommand::UnlinkModule { module } => {
            if strategy.modules.contains(module) {
                vec![StrategyEvent::ModuleUnlinked { module: *module }]
            } else {
                vec![]
            }
        }
        StrategyCommand::Delete => {
            if !strategy.modules.is_empty() {
                return Err(ConfigRejection::HasDependants {
                    dependants: strategy
                        .modules
                        .iter()
                        .map(|m| Dependant::Module(*m))
                        .collect(),
                });
            }
            vec![StrategyEvent::Deleted]
        }
    })
}

fn evolve(state: &mut StrategyState, event: &StrategyEvent) {
    if let StrategyEvent::Created {
        id,
        name,
        reference,
        rules,
    } = event
    {
        state.strategy = Some(Strategy {
            id: *id,
            name: name.clone(),
            reference: reference.clone(),
            rules: rules.clone(),
            modules: BTreeSet::new(),
        });
        return;
    }
    let Some(strategy) = state.strategy.as_mut() else {
        return;
    };
    match event {
        StrategyEvent::Created { .. } => {}
        StrategyEvent::Updated { name, rules } => {
            strategy.name = name.clone();
            strategy.rules = rules.clone();
        }
        StrategyEvent::ModuleLinked { module } => {
            strategy.modules.insert(*module);
        }
        StrategyEvent::ModuleUnlinked { module } => {
            strategy.modules.remove(module);
        }
        StrategyEvent::Deleted => state.deleted = true,
    }
}
