//! E-mail: rendering an intent into a message (pure), and sending it through real SMTP (lettre).
//!
//! Rendering reads only the chat's own stream *up to the intent's source event*: those events
//! never change, so every attempt — and every engine, after any restart — renders the same
//! message, with the same Message-ID. A message that a receiving system sees twice (after a crash
//! between sending and recording, see docs/OUTBOX.md) is therefore byte-for-byte the same one.

use super::error::OutboxError;
use super::intent::{Intent, IntentKind};
use chat_core::conversation::{ChatEvent, ChatMessage, ChatRecord, Party};
use chat_core::projection::ConversationView;
use chat_core::{FieldValue, MessageId};
use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::fmt::Write as _;
use std::time::Duration;

/// Largest body of one e-mail, in bytes. A transcript longer than this keeps its latest
/// messages and says how many earlier ones were left out (a chat holds at most 1,000 messages
/// of 4 KiB, which would be a 4 MiB mail).
pub const EMAIL_BODY_BYTES_MAX: usize = 256 * 1024;
/// Longest subject, in characters (longer offline-form answers are cut).
pub const EMAIL_SUBJECT_CHARS_MAX: usize = 200;

/// How the outbox reaches its SMTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Host name or address.
    pub host: String,
    /// Port (25, 465, 587 …).
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// User name and password, if the server wants them.
    pub credentials: Option<(String, String)>,
}

impl SmtpConfig {
    /// A plain-text server on localhost (a test listener, or a local relay).
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            security: SmtpSecurity::None,
            credentials: None,
        }
    }
}

/// Transport security of the SMTP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS: only for a relay on the same machine or a test listener.
    None,
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// A rendered e-mail, before it becomes a lettre [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedMail {
    /// `From`.
    pub from: String,
    /// `Sender` when `from` is not the engine's own address (an offline interaction).
    pub sender: Option<String>,
    /// `Reply-To`.
    pub reply_to: Option<String>,
    /// `To`.
    pub to: String,
    /// `Subject`.
    pub subject: String,
    /// Plain-text body (at most [`EMAIL_BODY_BYTES_MAX`]).
    pub body: String,
    /// `Message-ID`, derived from the intent.
    pub message_id: String,
    /// `Date`: the source event's time, so every attempt is byte-for-byte the same message.
    pub date: DateTime<Utc>,
}

/// Renders a mail intent from the chat's events up to (and including) its source event.
/// `None` for webhook intents.
pub fn render(intent: &Intent, history: &[ChatEvent]) -> Result<Option<RenderedMail>, String> {
    let engine_sender = || {
        intent
            .sender
            .clone()
            .ok_or_else(|| "no sender address in the outbox settings".to_owned())
    };
    let view = ConversationView::from_events(history);
    let record = view
        .record()
        .ok_or_else(|| format!("chat stream {} has no ChatStarted", intent.source.stream))?;
    let mail = match &intent.kind {
        IntentKind::Webhook { .. } => return Ok(None),
        IntentKind::Transcript { to, episode } => {
            let messages: Vec<ChatMessage> = view
                .messages()
                .into_iter()
                .filter(|m| m.episode == *episode)
                .collect();
            RenderedMail {
                from: engine_sender()?,
                sender: None,
                reply_to: None,
                to: to.clone(),
                subject: "Transcript of your chat".to_owned(),
                body: transcript_body(&messages),
                message_id: intent.message_id(),
                date: intent.source.at,
            }
        }
        IntentKind::AsyncReply { to, .. } => {
            let reply_id = history.iter().rev().find_map(|event| match event {
                ChatEvent::AsyncReplyEmailRequested { message_id, .. } => Some(*message_id),
                _ => None,
            });
            let reply = reply_id.and_then(|id| find_message(&view, id));
            let mut body = String::from("An agent answered your message:\n\n");
            if let Some(reply) = reply {
                body.push_str(&reply.body.text);
                body.push('\n');
            }
            body.push_str("\nReturn to the chat to continue the conversation.\n");
            RenderedMail {
                from: engine_sender()?,
                sender: None,
                reply_to: None,
                to: to.clone(),
                subject: "Your message was answered".to_owned(),
                body: cut_body(body),
                message_id: intent.message_id(),
                date: intent.source.at,
            }
        }
        IntentKind::OfflineForward { to } => RenderedMail {
            from: engine_sender()?,
            sender: None,
            reply_to: record.contact_email.clone(),
            to: to.clone(),
            subject: cut_subject(&format!(
                "Offline message from {}",
                visitor_name(record)
                    .or_else(|| record.contact_email.clone())
                    .unwrap_or_else(|| "a visitor".to_owned())
            )),
            body: cut_body(offline_body(record)),
            message_id: intent.message_id(),
            date: intent.source.at,
        },
        IntentKind::OfflineInteraction {
            from,
            inbox,
            subject_field,
        } => RenderedMail {
            from: from.clone(),
            sender: Some(engine_sender()?),
            reply_to: None,
            to: inbox.clone(),
            subject: cut_subject(
                &record
                    .form_answers
                    .get(subject_field)
                    .map(field_text)
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| "Offline message".to_owned()),
            ),
            body: cut_body(offline_body(record)),
            message_id: intent.message_id(),
            date: intent.source.at,
        },
    };
    Ok(Some(mail))
}

fn find_message(view: &ConversationView, id: MessageId) -> Option<ChatMessage> {
    view.messages().into_iter().find(|m| m.id == id)
}

fn visitor_name(record: &ChatRecord) -> Option<String> {
    let name = [
        record.page.firstname.as_deref(),
        record.page.lastname.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    (!name.trim().is_empty()).then_some(name)
}

/// One form answer as text.
fn field_text(value: &FieldValue) -> String {
    match value {
        FieldValue::Text(text) => text.clone(),
        FieldValue::Many(values) => values.join(", "),
        FieldValue::Agreed(agreed) => if *agreed { "yes" } else { "no" }.to_owned(),
        FieldValue::Files(files) => files
            .iter()
            .map(|f| f.file_name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn offline_body(record: &ChatRecord) -> String {
    let mut body = String::from("A visitor left a message while the chat was offline.\n\n");
    if let Some(email) = &record.contact_email {
        let _ = writeln!(body, "E-mail: {email}");
    }
    if let Some(name) = visitor_name(record) {
        let _ = writeln!(body, "Name: {name}");
    }
    if let Some(message) = &record.page.message {
        let _ = writeln!(body, "Message: {message}");
    }
    for (field, value) in &record.form_answers {
        let _ = writeln!(body, "{field}: {}", field_text(value));
    }
    let _ = writeln!(body, "\nChat: {}", record.chat);
    body
}

fn author(party: Party) -> &'static str {
    match party {
        Party::Visitor => "You",
        Party::Agent(_) => "Agent",
        Party::System => "System",
    }
}

/// The transcript: one line block per message, oldest first; if too long, the latest messages
/// that fit, after a line saying how many were left out.
fn transcript_body(messages: &[ChatMessage]) -> String {
    let header = "Here is the transcript of your chat.\n\n";
    let blocks: Vec<String> = messages
        .iter()
        .map(|m| {
            let mut block = format!(
                "[{}] {}: {}\n",
                m.at.format("%Y-%m-%d %H:%M:%S UTC"),
                author(m.author),
                m.body.text
            );
            for attachment in &m.body.attachments {
                let _ = writeln!(block, "  (attachment: {})", attachment.file_name);
            }
            if let Some(article) = &m.body.article {
                let _ = writeln!(block, "  (article: {})", article.title);
            }
            if m.redaction.is_some() {
                block.push_str("  (this message was removed)\n");
            }
            block
        })
        .collect();
    // Room for the header and the "left out" line.
    let budget = EMAIL_BODY_BYTES_MAX - header.len() - 64;
    let mut kept = 0;
    let mut used = 0;
    for block in blocks.iter().rev() {
        if used + block.len() > budget {
            break;
        }
        used += block.len();
        kept += 1;
    }
    let mut body = String::from(header);
    let omitted = blocks.len() - kept;
    if omitted > 0 {
        let _ = writeln!(body, "({omitted} earlier messages are not included)\n");
    }
    for block in &blocks[omitted..] {
        body.push_str(block);
    }
    body
}

fn cut_subject(subject: &str) -> String {
    let one_line: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one_line.chars().take(EMAIL_SUBJECT_CHARS_MAX).collect()
}

fn cut_body(mut body: String) -> String {
    if body.len() > EMAIL_BODY_BYTES_MAX {
        let mut end = EMAIL_BODY_BYTES_MAX;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
    }
    body
}

/// Sends rendered mail through one SMTP server.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer {
    /// A mailer for `config`; every send opens its own connection (no pool: sends are rare and
    /// a pooled connection that died would cost an attempt).
    pub(crate) fn new(config: &SmtpConfig, timeout: Duration) -> Result<Self, OutboxError> {
        let builder = match config.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|e| OutboxError::Config(format!("smtp.host: {e}")))?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| OutboxError::Config(format!("smtp.host: {e}")))?,
        };
        let mut builder = builder.port(config.port).timeout(Some(timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
        })
    }

    /// Sends one mail; `Ok` carries the server's reply, `Err` why it failed.
    pub(crate) async fn send(&self, mail: &RenderedMail) -> Result<String, String> {
        let message = to_message(mail)?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|e| format!("smtp: {e}"))?;
        Ok(format!(
            "smtp {} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        ))
    }
}

fn mailbox(field: &str, address: &str) -> Result<Mailbox, String> {
    address
        .parse::<Mailbox>()
        .map_err(|e| format!("{field} {address:?} is not an address: {e}"))
}

/// The lettre message of a rendered mail. The envelope's sender is the engine's own address
/// (`Sender` when set): a relay accepts mail from its own domain, not from a visitor's.
pub(crate) fn to_message(mail: &RenderedMail) -> Result<Message, String> {
    let envelope_from = mail.sender.as_deref().unwrap_or(&mail.from);
    let envelope = lettre::address::Envelope::new(
        Some(
            envelope_from
                .parse::<Address>()
                .map_err(|e| format!("sender: {e}"))?,
        ),
        vec![mail.to.parse::<Address>().map_err(|e| format!("to: {e}"))?],
    )
    .map_err(|e| format!("envelope: {e}"))?;
    let mut builder = Message::builder()
        .message_id(Some(mail.message_id.clone()))
        .from(mailbox("from", &mail.from)?)
        .to(mailbox("to", &mail.to)?)
        .subject(mail.subject.clone())
        .date(std::time::SystemTime::from(mail.date))
        .envelope(envelope)
        .header(ContentType::TEXT_PLAIN);
    if let Some(sender) = &mail.sender {
        builder = builder.sender(mailbox("sender", sender)?);
    }
    if let Some(reply_to) = &mail.reply_to {
        builder = builder.reply_to(mailbox("reply_to", reply_to)?);
    }
    builder
        .body(mail.body.clone())
        .map_err(|e| format!("message: {e}"))
}
