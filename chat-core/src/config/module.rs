//! The chat module aggregate (M1–M4, M7–M10): a website or channel entry point, configured by an
//! admin, whose own event stream `module-<uuid>` is its history.
//!
//! Reference uniqueness is not decided here but by the reference's reservation stream
//! ([`super::Reservation`]), appended atomically with the module's creation; this aggregate only
//! checks the reference's characters. Trigger-strategy links are recorded on both sides (here and
//! on the strategy) by one atomic append, so that each side can refuse its own deletion (M8, T4).

use super::common::{
    ConfigRejection, Dependant, ExternalUse, Stamped, TEXT_CHARS_MAX, check_absent, check_count,
    check_key, check_language, check_name, check_reference, check_text, check_url, live,
    normalise_colour, parse_time_zone, stamped_decider,
};
use super::form::{ATTACHMENT_BYTES_DEFAULT, ATTACHMENT_BYTES_MAX, FormDefinition, FormKind};
use super::schedule::{Schedule, WorkingHours};
use crate::{ChatId, EventKind, ModuleId, QueueId, StrategyId};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most tags on one module.
pub const TAGS_PER_MODULE_MAX: usize = 20;
/// Most fields of a module's case template (A6).
pub const CASE_TEMPLATE_FIELDS_MAX: usize = 30;
/// Longest value of a case template field, in characters.
pub const CASE_TEMPLATE_VALUE_CHARS_MAX: usize = 1000;
/// Longest tag, in characters.
pub const TAG_CHARS_MAX: usize = 32;
/// Most avatars of the advanced style (M4).
pub const AVATARS_MAX: usize = 3;
/// Most trigger strategies attached to one module.
pub const STRATEGIES_PER_MODULE_MAX: usize = 20;
/// Most registered external uses of one module.
pub const EXTERNAL_USES_MAX: usize = 100;
/// Highest configurable limit of concurrent chats on one module (C2).
pub const CONCURRENT_CHATS_LIMIT_MAX: u32 = 10_000;
/// Longest short text of the appearance (title, heading, button title, icon name), in characters.
pub const APPEARANCE_TEXT_CHARS_MAX: usize = 100;

/// A time zone, or the account's default (M1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZoneSetting {
    /// Follow the account's default time zone.
    Default,
    /// An IANA name such as `Europe/Paris`.
    Named(String),
}

/// A language, or the account's default (M1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LanguageSetting {
    /// Follow the account's default language.
    Default,
    /// A tag such as `fr` or `pt-BR`.
    Tag(String),
}

/// What runs when a chat of the module ends (M1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndOfInteraction {
    /// Nothing.
    Nothing,
    /// Send the visitor the named survey.
    Survey {
        /// The survey's key.
        survey: String,
    },
    /// Hand the ended chat to a follow-up queue.
    FollowUpQueue(QueueId),
}

/// Simple or advanced appearance (M4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Style {
    /// Title, colours and icon only.
    Simple,
    /// The simple fields plus avatars, a heading and a button title.
    Advanced {
        /// Up to [`AVATARS_MAX`] image URLs.
        avatars: Vec<String>,
        /// The heading over the conversation.
        heading: String,
        /// The text on the chat button.
        button_title: String,
    },
}

/// How the widget looks (M4). Colours are normalised to `#rrggbb` when decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appearance {
    /// The widget's title.
    pub title: String,
    /// The module's colour.
    pub module_colour: String,
    /// The button's colour.
    pub button_colour: String,
    /// The button's icon name.
    pub button_icon: String,
    /// Simple or advanced, with the advanced fields.
    pub style: Style,
}

impl Default for Appearance {
    fn default() -> Self {
        Self {
            title: "Chat with us".to_owned(),
            module_colour: "#1f6feb".to_owned(),
            button_colour: "#1f6feb".to_owned(),
            button_icon: "chat".to_owned(),
            style: Style::Simple,
        }
    }
}

/// Every editable field of a module except its reference (M1, M3, M4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSettings {
    /// Display name (searchable).
    pub name: String,
    /// Name used in statistics (searchable, X3).
    pub alias: String,
    /// Optional description.
    pub description: Option<String>,
    /// Time zone of the working intervals.
    pub time_zone: ZoneSetting,
    /// Language of the widget and of system messages.
    pub language: LanguageSetting,
    /// The queue smart routing starts from; `None` means the module cannot take chats (M10).
    pub routing: Option<QueueId>,
    /// What runs when a chat ends.
    pub end_of_interaction: EndOfInteraction,
    /// E-mail the transcript to the visitor at the end (O2).
    pub transcript_email: bool,
    /// Most chats open at once before new ones go offline (C2); `None` is unlimited.
    pub concurrent_chats_max: Option<u32>,
    /// Let the visitor keep writing while no agent is available (C3).
    pub async_chatting: bool,
    /// Turn a chat no agent can take into a case instead of leaving it unmanaged (A6).
    pub case_when_no_agent: bool,
    /// Largest attachment in a chat message, in bytes; 0 refuses attachments (A5).
    pub attachment_bytes_max: u64,
    /// How the widget looks.
    pub appearance: Appearance,
}

impl ModuleSettings {
    /// Settings with every optional field at its default (for examples and tests).
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            alias: name.to_owned(),
            description: None,
            time_zone: ZoneSetting::Default,
            language: LanguageSetting::Default,
            routing: None,
            end_of_interaction: EndOfInteraction::Nothing,
            transcript_email: false,
            concurrent_chats_max: None,
            async_chatting: false,
            case_when_no_agent: false,
            attachment_bytes_max: ATTACHMENT_BYTES_DEFAULT,
            appearance: Appearance::default(),
        }
    }

    /// Checks every field and returns the settings with colours normalised.
    fn checked(&self) -> Result<Self, ConfigRejection> {
        check_name("name", &self.name)?;
        check_name("alias", &self.alias)?;
        if let Some(description) = &self.description {
            check_text("description", description, TEXT_CHARS_MAX)?;
        }
        if let ZoneSetting::Named(name) = &self.time_zone {
            parse_time_zone(name)?;
        }
        if let LanguageSetting::Tag(tag) = &self.language {
            check_language(tag)?;
        }
        if let EndOfInteraction::Survey { survey } = &self.end_of_interaction {
            check_key("survey", survey)?;
        }
        if let Some(max) = self.concurrent_chats_max
            && !(1..=CONCURRENT_CHATS_LIMIT_MAX).contains(&max)
        {
            return Err(ConfigRejection::OutOfRange {
                field: "concurrent_chats_max".to_owned(),
                min: 1,
                max: u64::from(CONCURRENT_CHATS_LIMIT_MAX),
                value: u64::from(max),
            });
        }
        if self.attachment_bytes_max > ATTACHMENT_BYTES_MAX {
            return Err(ConfigRejection::OutOfRange {
                field: "attachment_bytes_max".to_owned(),
                min: 0,
                max: ATTACHMENT_BYTES_MAX,
                value: self.attachment_bytes_max,
            });
        }
        let a = &self.appearance;
        check_name("title", &a.title)?;
        check_text("title", &a.title, APPEARANCE_TEXT_CHARS_MAX)?;
        check_text("button_icon", &a.button_icon, APPEARANCE_TEXT_CHARS_MAX)?;
        if let Style::Advanced {
            avatars,
            heading,
            button_title,
        } = &a.style
        {
            check_count("avatars", avatars.len(), AVATARS_MAX)?;
            for avatar in avatars {
                check_url("avatars", avatar)?;
            }
            check_text("heading", heading, APPEARANCE_TEXT_CHARS_MAX)?;
            check_text("button_title", button_title, APPEARANCE_TEXT_CHARS_MAX)?;
        }
        let mut checked = self.clone();
        checked.appearance.module_colour = normalise_colour("module_colour", &a.module_colour)?;
        checked.appearance.button_colour = normalise_colour("button_colour", &a.button_colour)?;
        Ok(checked)
    }

    /// The names of the fields that differ, for the history (M7).
    fn changed_fields(&self, new: &Self) -> Vec<String> {
        let pairs: [(&str, bool); 13] = [
            ("name", self.name != new.name),
            ("alias", self.alias != new.alias),
            ("description", self.description != new.description),
            ("time_zone", self.time_zone != new.time_zone),
            ("language", self.language != new.language),
            ("routing", self.routing != new.routing),
            (
                "end_of_interaction",
                self.end_of_interaction != new.end_of_interaction,
            ),
            (
                "transcript_email",
                self.transcript_email != new.transcript_email,
            ),
            (
                "concurrent_chats_max",
                self.concurrent_chats_max != new.concurrent_chats_max,
            ),
            ("async_chatting", self.async_chatting != new.async_chatting),
            (
                "case_when_no_agent",
                self.case_when_no_agent != new.case_when_no_agent,
            ),
            (
                "attachment_bytes_max",
                self.attachment_bytes_max != new.attachment_bytes_max,
            ),
            ("appearance", self.appearance != new.appearance),
        ];
        pairs
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(name, _)| name.to_owned())
            .collect()
    }
}

/// How a trigger strategy is attached to a module (T3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentFlags {
    /// Display the chat icon when the strategy matches.
    pub display: bool,
    /// Open the whole chat when the strategy matches.
    pub open: bool,
}

impl Default for AttachmentFlags {
    /// T3: display = yes, open = no.
    fn default() -> Self {
        Self {
            display: true,
            open: false,
        }
    }
}

impl AttachmentFlags {
    /// T3: display may be *no* only while open is *yes*.
    pub fn check(self) -> Result<Self, ConfigRejection> {
        if !self.display && !self.open {
            return Err(ConfigRejection::DisplayAndOpenBothOff);
        }
        Ok(self)
    }
}

/// A live module: the fold of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Its id.
    pub id: ModuleId,
    /// Its reference (unique, M2).
    pub reference: String,
    /// Its editable settings.
    pub settings: ModuleSettings,
    /// The path of its public chat URL, fixed at creation (M2, M9).
    pub public_path: String,
    /// Weekly ranges and exceptions (S1), read in [`Module::time_zone`].
    pub working_hours: WorkingHours,
    /// Pre-chat and offline forms (F1).
    pub forms: BTreeMap<FormKind, FormDefinition>,
    /// Tags (M3).
    pub tags: BTreeSet<String>,
    /// Attached trigger strategies with their flags (T1, T3).
    pub strategies: BTreeMap<StrategyId, AttachmentFlags>,
    /// Registered external uses (M8, M9).
    pub external_uses: BTreeSet<ExternalUse>,
    /// A6: the fields every case made from this module's chats carries (e.g. `priority`,
    /// `category`), whether the case is made because nobody was online or by an agent.
    pub case_template: BTreeMap<String, String>,
    /// The module this one was duplicated from (M7).
    pub duplicated_from: Option<ModuleId>,
}

impl Module {
    /// The module's zone: its own, or the account's default (M1).
    pub fn time_zone(&self, account_default: Tz) -> Tz {
        match &self.settings.time_zone {
            ZoneSetting::Default => account_default,
            // Names were checked when decided; a name a later tzdb dropped falls back too.
            ZoneSetting::Named(name) => name.parse().unwrap_or(account_default),
        }
    }

    /// The module's language: its own, or the account's default (M1).
    pub fn language<'a>(&'a self, account_default: &'a str) -> &'a str {
        match &self.settings.language {
            LanguageSetting::Default => account_default,
            LanguageSetting::Tag(tag) => tag,
        }
    }

    /// The working intervals in the module's zone (S1).
    pub fn schedule(&self, account_default: Tz) -> Schedule {
        self.working_hours.in_zone(self.time_zone(account_default))
    }

    /// The public chat URL under the service's base URL (M2, M9).
    pub fn public_chat_url(&self, base_url: &str) -> String {
        format!("{}{}", base_url.trim_end_matches('/'), self.public_path)
    }

    /// M10: a module takes chats only once it has a routing configuration.
    pub fn can_take_chats(&self) -> Result<QueueId, ConfigRejection> {
        self.settings.routing.ok_or(ConfigRejection::NoRouting)
    }

    /// The command that copies this module under a new id, reference and name (M7). Strategy
    /// attachments and external uses are not copied: both are links the other side must agree to.
    pub fn duplicate(&self, id: ModuleId, reference: &str, name: &str) -> ModuleCommand {
        ModuleCommand::Duplicate {
            id,
            reference: reference.to_owned(),
            name: name.to_owned(),
            source: Box::new(self.clone()),
        }
    }
}

/// The path of a module's public chat URL: derived from the id, so it is generated once and
/// never changes, whatever else is edited (M2).
pub fn public_path(id: ModuleId) -> String {
    format!("/chat/{id}")
}

/// The state of a module stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleState {
    /// The module, once created (kept after deletion, for history readers).
    pub module: Option<Module>,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// What an admin can ask of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleCommand {
    /// M1: create. The host appends the reference's reservation in the same atomic append.
    Create {
        /// Minted by the host.
        id: ModuleId,
        /// The reference.
        reference: String,
        /// Every other field.
        settings: ModuleSettings,
    },
    /// M7: create as a copy of `source` (see [`Module::duplicate`]).
    Duplicate {
        /// The new id.
        id: ModuleId,
        /// The new reference.
        reference: String,
        /// The new name.
        name: String,
        /// The module copied.
        source: Box<Module>,
    },
    /// M3: edit every field but the reference.
    Update {
        /// The new settings.
        settings: ModuleSettings,
    },
    /// M3: change the reference (the host reserves the new one and releases the old one).
    ChangeReference {
        /// The new reference.
        reference: String,
    },
    /// S1: replace the working intervals.
    SetWorkingHours {
        /// The new hours.
        hours: WorkingHours,
    },
    /// F1: set or remove a form.
    SetForm {
        /// Which form.
        kind: FormKind,
        /// The definition, or `None` for no form.
        form: Option<FormDefinition>,
    },
    /// M3: add a tag.
    AddTag {
        /// The tag.
        tag: String,
    },
    /// M3: remove a tag.
    RemoveTag {
        /// The tag.
        tag: String,
    },
    /// T1, T3: attach a strategy (the host links the strategy's stream in the same append).
    AttachStrategy {
        /// The strategy.
        strategy: StrategyId,
        /// Display / open.
        flags: AttachmentFlags,
    },
    /// T3: change an attachment's flags.
    SetStrategyFlags {
        /// The strategy.
        strategy: StrategyId,
        /// Display / open.
        flags: AttachmentFlags,
    },
    /// T1: detach a strategy (the host unlinks the strategy's stream in the same append).
    DetachStrategy {
        /// The strategy.
        strategy: StrategyId,
    },
    /// A6: replace the case template.
    SetCaseTemplate {
        /// Field name (lowercase letters, digits, `_`) → value.
        template: BTreeMap<String, String>,
    },
    /// M8, M9: record an external use.
    RegisterUse {
        /// The use.
        external: ExternalUse,
    },
    /// M8: the external use ended.
    ReleaseUse {
        /// The use.
        external: ExternalUse,
    },
    /// M8: delete, refused while anything depends on the module.
    Delete {
        /// The module's chats that have not ended, from the host's conversation projection.
        open_chats: BTreeSet<ChatId>,
    },
}

/// What happened to a module. Stored inside [`Stamped`] (who, when).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModuleEvent {
    /// The module exists.
    Created {
        /// Its id.
        id: ModuleId,
        /// Its reference.
        reference: String,
        /// Its settings (colours normalised).
        settings: ModuleSettings,
        /// Its public chat URL's path, generated once.
        public_path: String,
        /// Set when it was created as a copy.
        duplicated_from: Option<ModuleId>,
    },
    /// Settings were edited.
    Updated {
        /// The new settings.
        settings: ModuleSettings,
        /// The names of the fields that changed.
        changed: Vec<String>,
    },
    /// The reference changed.
    ReferenceChanged {
        /// The old reference.
        from: String,
        /// The new reference.
        to: String,
    },
    /// The working intervals were replaced.
    WorkingHoursSet {
        /// The new hours.
        hours: WorkingHours,
    },
    /// A form was set or removed.
    FormSet {
        /// Which form.
        kind: FormKind,
        /// The definition, or `None`.
        form: Option<FormDefinition>,
    },
    /// A tag was added.
    TagAdded {
        /// The tag.
        tag: String,
    },
    /// A tag was removed.
    TagRemoved {
        /// The tag.
        tag: String,
    },
    /// A strategy was attached.
    StrategyAttached {
        /// The strategy.
        strategy: StrategyId,
        /// Its flags.
        flags: AttachmentFlags,
    },
    /// An attachment's flags changed.
    StrategyFlagsChanged {
        /// The strategy.
        strategy: StrategyId,
        /// The new flags.
        flags: AttachmentFlags,
    },
    /// A strategy was detached.
    StrategyDetached {
        /// The strategy.
        strategy: StrategyId,
    },
    /// The case template was replaced (A6).
    CaseTemplateSet {
        /// The new template.
        template: BTreeMap<String, String>,
    },
    /// An external use was registered.
    UseRegistered {
        /// The use.
        external: ExternalUse,
    },
    /// An external use was released.
    UseReleased {
        /// The use.
        external: ExternalUse,
    },
    /// The module was deleted.
    Deleted,
}

impl EventKind for ModuleEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "ModuleCreated",
            Self::Updated { .. } => "ModuleUpdated",
            Self::ReferenceChanged { .. } => "ModuleReferenceChanged",
            Self::WorkingHoursSet { .. } => "ModuleWorkingHoursSet",
            Self::FormSet { .. } => "ModuleFormSet",
            Self::TagAdded { .. } => "ModuleTagAdded",
            Self::TagRemoved { .. } => "ModuleTagRemoved",
            Self::StrategyAttached { .. } => "ModuleStrategyAttached",
            Self::StrategyFlagsChanged { .. } => "ModuleStrategyFlagsChanged",
            Self::StrategyDetached { .. } => "ModuleStrategyDetached",
            Self::UseRegistered { .. } => "ModuleUseRegistered",
            Self::UseReleased { .. } => "ModuleUseReleased",
            Self::CaseTemplateSet { .. } => "ModuleCaseTemplateSet",
            Self::Deleted => "ModuleDeleted",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

fn check_tag(tag: &str) -> Result<(), ConfigRejection> {
    check_text("tag", tag, TAG_CHARS_MAX)?;
    if tag.trim().is_empty() || tag.trim() != tag || tag.chars().any(char::is_control) {
        return Err(ConfigRejection::Invalid {
            field: "tag".to_owned(),
            value: tag.to_owned(),
            reason: "a tag is non-empty text without surrounding spaces",
        });
    }
    Ok(())
}

fn created(
    id: ModuleId,
    reference: &str,
    settings: &ModuleSettings,
    duplicated_from: Option<ModuleId>,
) -> Result<ModuleEvent, ConfigRejection> {
    check_reference(reference)?;
    Ok(ModuleEvent::Created {
        id,
        reference: reference.to_owned(),
        settings: settings.checked()?,
        public_path: public_path(id),
        duplicated_from,
    })
}

/// The aggregate's decider (the state type is [`ModuleState`]).
#[derive(Debug)]
pub enum ModuleDecider {}

stamped_decider!(ModuleDecider {
    state: ModuleState,
    command: ModuleCommand,
    event: ModuleEvent,
    decide: decide,
    evolve: evolve,
});

fn decide(
    state: &ModuleState,
    command: &ModuleCommand,
) -> Result<Vec<ModuleEvent>, ConfigRejection> {
    const OBJECT: &str = "module";
    if let ModuleCommand::Create {
        id,
        reference,
        settings,
    } = command
    {
        check_absent(OBJECT, state.module.as_ref())?;
        return Ok(vec![created(*id, reference, settings, None)?]);
    }
    if let ModuleCommand::Duplicate {
        id,
        reference,
        name,
        source,
    } = command
    {
        check_absent(OBJECT, state.module.as_ref())?;
        let mut settings = source.settings.clone();
        settings.name = name.clone();
        let mut events = vec![created(*id, reference, &settings, Some(source.id))?];
        if source.working_hours != WorkingHours::default() {
            events.push(ModuleEvent::WorkingHoursSet {
                hours: source.working_hours.clone(),
            });
        }
        events.extend(
            source
                .forms
                .iter()
                .map(|(kind, form)| ModuleEvent::FormSet {
                    kind: *kind,
                    form: Some(form.clone()),
                }),
        );
        events.extend(
            source
                .tags
                .iter()
                .map(|tag| ModuleEvent::TagAdded { tag: tag.clone() }),
        );
        if !source.case_template.is_empty() {
            events.push(ModuleEvent::CaseTemplateSet {
                template: source.case_template.clone(),
            });
        }
        return Ok(events);
    }
    let module = live(OBJECT, state.module.as_ref(), state.deleted)?;
    let missing = |field: &str, value: String| ConfigRejection::Missing {
        field: field.to_owned(),
        value,
    };
    let duplicate = |field: &str, value: String| ConfigRejection::Duplicate {
        field: field.to_owned(),
        value,
    };
    Ok(match command {
        ModuleCommand::Create { .. } | ModuleCommand::Duplicate { .. } => vec![],
        ModuleCommand::Update { settings } => {
            let settings = settings.checked()?;
            let changed = module.settings.changed_fields(&settings);
            if changed.is_empty() {
                vec![]
            } else {
                vec![ModuleEvent::Updated { settings, changed }]
            }
        }
        ModuleCommand::ChangeReference { reference } => {
            check_reference(reference)?;
            if *reference == module.reference {
                vec![]
            } else {
                vec![ModuleEvent::ReferenceChanged {
                    from: module.reference.clone(),
                    to: reference.clone(),
                }]
            }
        }
        ModuleCommand::SetWorkingHours { hours } => {
            hours.validate()?;
            if *hours == module.working_hours {
                vec![]
            } else {
                vec![ModuleEvent::WorkingHoursSet {
                    hours: hours.clone(),
                }]
            }
        }
        ModuleCommand::SetForm { kind, form } => {
            if let Some(form) = form {
                form.validate()?;
            }
            if module.forms.get(kind) == form.as_ref() {
                vec![]
            } else {
                vec![ModuleEvent::FormSet {
                    kind: *kind,
                    form: form.clone(),
                }]
            }
        }
        ModuleCommand::AddTag { tag } => {
            check_tag(tag)?;
            if module.tags.contains(tag) {
                return Err(duplicate("tags", tag.clone()));
            }
            check_count("tags", module.tags.len() + 1, TAGS_PER_MODULE_MAX)?;
            vec![ModuleEvent::TagAdded { tag: tag.clone() }]
        }
        ModuleCommand::RemoveTag { tag } => {
            if !module.tags.contains(tag) {
                return Err(missing("tags", tag.clone()));
            }
            vec![ModuleEvent::TagRemoved { tag: tag.clone() }]
        }
        ModuleCommand::AttachStrategy { strategy, flags } => {
            let flags = flags.check()?;
            if module.strategies.contains_key(strategy) {
                return Err(duplicate("strategies", strategy.to_string()));
            }
            check_count(
                "strategies",
                module.strategies.len() + 1,
                STRATEGIES_PER_MODULE_MAX,
            )?;
            vec![ModuleEvent::StrategyAttached {
                strategy: *strategy,
                flags,
            }]
        }
        ModuleCommand::SetStrategyFlags { strategy, flags } => {
            let flags = flags.check()?;
            let current = module
                .strategies
                .get(strategy)
                .ok_or_else(|| missing("strategies", strategy.to_string()))?;
            if *current == flags {
                vec![]
            } else {
                vec![ModuleEvent::StrategyFlagsChanged {
                    strategy: *strategy,
                    flags,
                }]
            }
        }
        ModuleCommand::DetachStrategy { strategy } => {
            if !module.strategies.contains_key(strategy) {
                return Err(missing("strategies", strategy.to_string()));
            }
            vec![ModuleEvent::StrategyDetached {
                strategy: *strategy,
            }]
        }
        ModuleCommand::SetCaseTemplate { template } => {
            check_count("case_template", template.len(), CASE_TEMPLATE_FIELDS_MAX)?;
            for (name, value) in template {
                check_key("case_template", name)?;
                check_text(
                    &format!("case_template.{name}"),
                    value,
                    CASE_TEMPLATE_VALUE_CHARS_MAX,
                )?;
            }
            if *template == module.case_template {
                vec![]
            } else {
                vec![ModuleEvent::CaseTemplateSet {
                    template: template.clone(),
                }]
            }
        }
        ModuleCommand::RegisterUse { external } => {
            check_key("external use kind", &external.kind)?;
            check_name("external use id", &external.id)?;
            if module.external_uses.contains(external) {
                return Err(duplicate("external uses", external.id.clone()));
            }
            check_count(
                "external uses",
                module.external_uses.len() + 1,
                EXTERNAL_USES_MAX,
            )?;
            vec![ModuleEvent::UseRegistered {
                external: external.clone(),
            }]
        }
        ModuleCommand::ReleaseUse { external } => {
            if !module.external_uses.contains(external) {
                return Err(missing("external uses", external.id.clone()));
            }
            vec![ModuleEvent::UseReleased {
                external: external.clone(),
            }]
        }
        ModuleCommand::Delete { open_chats } => {
            let mut dependants: Vec<Dependant> = module
                .strategies
                .keys()
                .map(|s| Dependant::Strategy(*s))
                .chain(open_chats.iter().map(|c| Dependant::OpenChat(*c)))
                .chain(
                    module
                        .external_uses
                        .iter()
                        .map(|u| Dependant::ExternalUse(u.clone())),
                )
                .collect();
            dependants.sort();
            if !dependants.is_empty() {
                return Err(ConfigRejection::HasDependants { dependants });
            }
            vec![ModuleEvent::Deleted]
        }
    })
}

fn evolve(state: &mut ModuleState, event: &ModuleEvent) {
    if let ModuleEvent::Created {
        id,
        reference,
        settings,
        public_path,
        duplicated_from,
    } = event
    {
        state.module = Some(Module {
            id: *id,
            reference: reference.clone(),
            settings: settings.clone(),
            public_path: public_path.clone(),
            working_hours: WorkingHours::default(),
            forms: BTreeMap::new(),
            tags: BTreeSet::new(),
            strategies: BTreeMap::new(),
            external_uses: BTreeSet::new(),
            case_template: BTreeMap::new(),
            duplicated_from: *duplicated_from,
        });
        return;
    }
    // evolve is total: an event for a stream without a Created (impossible from decide) is
    // ignored rather than refused, since a stored event is a fact.
    let Some(module) = state.module.as_mut() else {
        return;
    };
    match event {
        ModuleEvent::Created { .. } => {}
        ModuleEvent::Updated { settings, .. } => module.settings = settings.clone(),
        ModuleEvent::ReferenceChanged { to, .. } => module.reference = to.clone(),
        ModuleEvent::WorkingHoursSet { hours } => module.working_hours = hours.clone(),
        ModuleEvent::FormSet { kind, form } => match form {
            Some(form) => {
                module.forms.insert(*kind, form.clone());
            }
            None => {
                module.forms.remove(kind);
            }
        },
        ModuleEvent::TagAdded { tag } => {
            module.tags.insert(tag.clone());
        }
        ModuleEvent::TagRemoved { tag } => {
            module.tags.remove(tag);
        }
        ModuleEvent::StrategyAttached { strategy, flags }
        | ModuleEvent::StrategyFlagsChanged { strategy, flags } => {
            module.strategies.insert(*strategy, *flags);
        }
        ModuleEvent::StrategyDetached { strategy } => {
            module.strategies.remove(strategy);
        }
        ModuleEvent::CaseTemplateSet { template } => module.case_template = template.clone(),
        ModuleEvent::UseRegistered { external } => {
            module.external_uses.insert(external.clone());
        }
        ModuleEvent::UseReleased { external } => {
            module.external_uses.remove(external);
        }
        ModuleEvent::Deleted => state.deleted = true,
    }
}

/// The admin's list of modules (M3): folded from every module stream, searchable by name or
/// alias and by tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleCatalogue {
    modules: BTreeMap<ModuleId, ModuleState>,
}

impl ModuleCatalogue {
    /// Folds one event of `module`'s stream.
    pub fn record(&mut self, module: ModuleId, event: &Stamped<ModuleEvent>) {
        evolve(self.modules.entry(module).or_default(), &event.event);
    }

    /// Every live module, by id.
    pub fn list(&self) -> impl Iterator<Item = &Module> {
        self.modules
            .values()
            .filter(|s| !s.deleted)
            .filter_map(|s| s.module.as_ref())
    }

    /// Live modules whose name or alias contains `text`, ignoring case (M3).
    pub fn search(&self, text: &str) -> Vec<&Module> {
        let needle = text.to_lowercase();
        self.list()
            .filter(|m| {
                m.settings.name.to_lowercase().contains(&needle)
                    || m.settings.alias.to_lowercase().contains(&needle)
            })
            .collect()
    }

    /// Live modules carrying `tag` (exact match, M3).
    pub fn with_tag(&self, tag: &str) -> Vec<&Module> {
        self.list().filter(|m| m.tags.contains(tag)).collect()
    }
}
