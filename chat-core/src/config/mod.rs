//! The admin side of chat: modules, trigger strategies, working intervals, forms, contacts,
//! queues, canned responses and account settings (M1–M10, T1–T4, S1–S2, F1–F5,
//! R1, A4).
//!
//! Every configuration object is a [`Decider`](crate::Decider) whose own event stream is its
//! history (M7): admin commands arrive as [`AdminCommand`] and every event is [`Stamped`] with
//! who and when. Reference uniqueness across concurrent admins is the job of the per-reference
//! [`Reservation`] aggregate (see `docs/CONFIGURATION.md`). Everything here is pure: time and ids
//! come from the host.

mod account;
mod canned;
mod common;
mod contact;
mod form;
mod module;
mod queue;
mod reservation;
mod schedule;
mod snippet;
mod trigger;

pub use account::{
    ACCOUNT_SETTINGS_STREAM, AUTHORISED_DOMAINS_MAX, AccountCommand, AccountEvent, AccountSettings,
    UNATTENDED_TIMEOUT_S_DEFAULT, UNATTENDED_TIMEOUT_S_MAX, UNATTENDED_TIMEOUT_S_MIN,
};
pub use canned::{
    CANNED_LOOKUP_RESULTS_MAX, CannedCommand, CannedContent, CannedDecider, CannedEvent,
    CannedLibrary, CannedResponse, CannedScope, CannedState,
};
pub use common::{
    AdminCommand, ConfigRejection, Dependant, ExternalUse, KEY_CHARS_MAX, NAME_CHARS_MAX,
    REFERENCE_CHARS_MAX, Stamped, TEXT_CHARS_MAX, URL_CHARS_MAX, check_reference, glob_matches,
    is_valid_email, normalise_colour, parse_time_zone,
};
pub use contact::{
    CONTACT_FIELDS_MAX, Contact, ContactCommand, ContactDirectory, ContactEvent, ContactField,
    ContactMatch,
};
pub use form::{
    ACCEPT_SPECIFIERS_MAX, ATTACHMENT_BYTES_DEFAULT, ATTACHMENT_BYTES_MAX, FIELDS_PER_FORM_MAX,
    FILES_PER_FIELD_MAX, FieldDef, FieldError, FieldKind, FieldProblem, FieldTarget, FileType,
    FormDefinition, FormErrors, FormKind, InputKind, LABEL_CHARS_MAX, OPTION_CHARS_MAX,
    OPTIONS_PER_FIELD_MAX, Submission, ValidatedForm, validate_submission,
};
pub use module::{
    APPEARANCE_TEXT_CHARS_MAX, AVATARS_MAX, Appearance, AttachmentFlags, CASE_TEMPLATE_FIELDS_MAX,
    CASE_TEMPLATE_VALUE_CHARS_MAX, CONCURRENT_CHATS_LIMIT_MAX, EXTERNAL_USES_MAX, EndOfInteraction,
    LanguageSetting, Module, ModuleCatalogue, ModuleCommand, ModuleDecider, ModuleEvent,
    ModuleSettings, ModuleState, STRATEGIES_PER_MODULE_MAX, Style, TAG_CHARS_MAX,
    TAGS_PER_MODULE_MAX, ZoneSetting, public_path,
};
pub use queue::{
    Level, MEMBERS_PER_QUEUE_MAX, Queue, QueueCommand, QueueDecider, QueueEvent, QueuePolicy,
    QueueState, RepeatMode, SAME_AGENT_WAIT_S_MAX, Selection,
};
pub use reservation::{
    ReferenceKind, Reservation, ReservationCommand, ReservationEvent, reservation_stream,
};
pub use schedule::{
    DayHours, EXCEPTIONS_MAX, MINUTES_PER_DAY, RANGES_PER_DAY_MAX, Schedule, TimeRange,
    WorkingHours,
};
pub use snippet::{
    DomainPattern, Origin, OriginRefused, Scheme, check_origin, check_page_data, render_snippet,
};
pub use trigger::{
    Combinator, Decision, Display, MODULES_PER_STRATEGY_MAX, PAGES_VIEWED_MAX,
    RULES_PER_STRATEGY_MAX, Reason, Rule, RuleSet, Strategy, StrategyCommand, StrategyDecider,
    StrategyEvent, StrategyState, TIME_ON_PAGE_S_MAX, UrlMatch, VISITOR_EVENTS_MAX, VisitorContext,
    evaluate,
};
