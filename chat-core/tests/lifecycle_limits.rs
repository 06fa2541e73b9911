//! Every named limit of a chat and of an agent, tested at its edge: the largest allowed value is
//! accepted and one more is refused with the limit's name.

mod lifecycle_support;

use chat_core::agent::{AGENT_CAPACITY_MAX, Agent, AgentCommand, AgentRejection};
use chat_core::conversation::*;
use chat_core::{AttachmentMeta, CaseId, Decider, FieldValue, PAGE_VARS_MAX, given};
use lifecycle_support::*;
use std::collections::BTreeMap;

/// Asserts the outcome is a refusal naming `limit`.
#[track_caller]
fn assert_limit(result: Result<Vec<ChatEvent>, Rejection>, limit: &str) {
    match result {
        Err(Rejection::LimitExceeded { limit: name, .. }) => assert_eq!(name, limit),
        other => panic!("expected limit {limit}, got {other:?}"),
    }
}

fn agent_message(body: MessageBody) -> ChatCommand {
    ChatCommand::PostMessage {
        command_id: cmd(100),
        message_id: msg(100),
        author: Party::Agent(AGENT_A),
        body,
    }
}

/// Decides `body` as agent A's message in an active chat.
fn post(body: MessageBody) -> Result<Vec<ChatEvent>, Rejection> {
    given::<Conversation>(&active_chat())
        .when(&agent_message(body), t(100))
        .result()
}

#[test]
fn c4_message_text_bytes_max() {
    assert!(post(MessageBody::text("é".repeat(MESSAGE_TEXT_BYTES_MAX / 2))).is_ok());
    assert_limit(
        post(MessageBody::text("x".repeat(MESSAGE_TEXT_BYTES_MAX + 1))),
        "message_text_bytes_max",
    );
}

fn attachment(size_bytes: u64) -> AttachmentMeta {
    AttachmentMeta {
        file_name: "f.png".to_owned(),
        content_type: "image/png".to_owned(),
        size_bytes,
        storage_key: "k".to_owned(),
    }
}

#[test]
fn a5_attachments_per_message_max_and_attachment_bytes_max() {
    let with = |n: usize, size: u64| MessageBody {
        attachments: vec![attachment(size); n],
        ..MessageBody::default()
    };
    assert!(post(with(ATTACHMENTS_PER_MESSAGE_MAX, 1)).is_ok());
    assert_limit(
        post(with(ATTACHMENTS_PER_MESSAGE_MAX + 1, 1)),
        "attachments_per_message_max",
    );
    let max = settings().attachment_bytes_max;
    assert!(post(with(1, max)).is_ok());
    assert_limit(post(with(1, max + 1)), "attachment_bytes_max");
}

#[test]
fn a3_quick_replies_per_message_max_and_quick_reply_bytes_max() {
    let with = |n: usize, bytes: usize| MessageBody {
        quick_replies: vec!["q".repeat(bytes); n],
        ..MessageBody::text("choose")
    };
    assert!(post(with(QUICK_REPLIES_PER_MESSAGE_MAX, QUICK_REPLY_BYTES_MAX)).is_ok());
    assert_limit(
        post(with(QUICK_REPLIES_PER_MESSAGE_MAX + 1, 1)),
        "quick_replies_per_message_max",
    );
    assert_limit(
        post(with(1, QUICK_REPLY_BYTES_MAX + 1)),
        "quick_reply_bytes_max",
    );
}

#[test]
fn a3_article_and_link_limits() {
    let article = |title: usize, link: usize, body: usize| MessageBody {
        article: Some(Article {
            title: "t".repeat(title),
            link: Some("l".repeat(link)),
            body: Some("b".repeat(body)),
        }),
        ..MessageBody::default()
    };
    assert!(
        post(article(
            ARTICLE_TITLE_BYTES_MAX,
            LINK_BYTES_MAX,
            ARTICLE_BODY_BYTES_MAX
        ))
        .is_ok()
    );
    assert_limit(
        post(article(ARTICLE_TITLE_BYTES_MAX + 1, 1, 1)),
        "article_title_bytes_max",
    );
    assert_limit(post(article(1, LINK_BYTES_MAX + 1, 1)), "link_bytes_max");
    assert_limit(
        post(article(1, 1, ARTICLE_BODY_BYTES_MAX + 1)),
        "article_body_bytes_max",
    );
    let video = |n: usize| MessageBody {
        video_call_link: Some("v".repeat(n)),
        ..MessageBody::default()
    };
    assert!(post(video(LINK_BYTES_MAX)).is_ok());
    assert_limit(post(video(LINK_BYTES_MAX + 1)), "link_bytes_max");
}

#[test]
fn c4_messages_per_chat_max() {
    let mut state = Conversation::replay(&active_chat());
    for i in 0..MESSAGES_PER_CHAT_MAX as u128 {
        let events = Conversation::decide(&state, &say(10 + i, Party::Visitor, "m"), t(100))
            .expect("below the limit");
        for event in &events {
            Conversation::evolve(&mut state, event);
        }
    }
    assert_eq!(state.messages.len(), MESSAGES_PER_CHAT_MAX);
    assert_limit(
        Conversation::decide(&state, &say(1_000_000, Party::Visitor, "m"), t(100)),
        "messages_per_chat_max",
    );
}

#[test]
fn c9_commands_per_chat_max_still_lets_the_chat_end() {
    // Transfers back and forth grow the set of remembered command ids without messages.
    let mut state = Conversation::replay(&active_chat());
    let mut n = 10;
    let mut holder = AGENT_A;
    while state.accepted_commands.len() < COMMANDS_PER_CHAT_MAX {
        let to = if holder == AGENT_A { AGENT_B } else { AGENT_A };
        let command = ChatCommand::TransferToAgent {
            command_id: cmd(n),
            by: holder,
            to,
        };
        for event in &Conversation::decide(&state, &command, t(100)).expect("below the limit") {
            Conversation::evolve(&mut state, event);
        }
        holder = to;
        n += 1;
    }
    assert_limit(
        Conversation::decide(&state, &say(n, Party::Visitor, "m"), t(100)),
        "commands_per_chat_max",
    );
    // Ending stays possible, so a full chat never stays open forever.
    let ended = Conversation::decide(&state, &end(n + 1, EndedBy::Visitor), t(100));
    assert!(matches!(
        ended.as_deref(),
        Ok([ChatEvent::EpisodeEnded { .. }, ..])
    ));
}

#[test]
fn c7_episodes_per_chat_max() {
    let mut state = Conversation::replay(&run(&[start(), end(1, EndedBy::Visitor)]));
    let mut n = 10;
    while state.episode < EPISODES_PER_CHAT_MAX {
        for command in [resume(n), end(n + 1, EndedBy::Visitor)] {
            for event in &Conversation::decide(&state, &command, t(100)).expect("allowed") {
                Conversation::evolve(&mut state, event);
            }
        }
        n += 2;
    }
    assert_eq!(state.episode, EPISODES_PER_CHAT_MAX);
    assert_limit(
        Conversation::decide(&state, &resume(n), t(100)),
        "episodes_per_chat_max",
    );
}

fn start_result(edit: impl FnOnce(&mut StartChat)) -> Result<Vec<ChatEvent>, Rejection> {
    let mut start = start_with(settings(), open_module());
    edit(&mut start);
    given::<Conversation>(&[])
        .when(&ChatCommand::Start(Box::new(start)), t(0))
        .result()
}

#[test]
fn c1_resume_token_bytes_max_and_email_bytes_max() {
    assert!(start_result(|s| s.resume_token = "r".repeat(RESUME_TOKEN_BYTES_MAX)).is_ok());
    assert_limit(
        start_result(|s| s.resume_token = "r".repeat(RESUME_TOKEN_BYTES_MAX + 1)),
        "resume_token_bytes_max",
    );
    let email = |n: usize| Some(format!("{}@x", "a".repeat(n - 2)));
    assert!(start_result(|s| s.contact_email = email(EMAIL_BYTES_MAX)).is_ok());
    assert_limit(
        start_result(|s| s.contact_email = email(EMAIL_BYTES_MAX + 1)),
        "email_bytes_max",
    );
}

fn answers(n: usize) -> BTreeMap<String, FieldValue> {
    (0..n)
        .map(|i| (format!("f{i}"), FieldValue::Agreed(true)))
        .collect()
}

fn vars(n: usize) -> BTreeMap<String, String> {
    (0..n).map(|i| (format!("v{i}"), "x".to_owned())).collect()
}

#[test]
fn m6_form_answers_routing_vars_and_page_vars_max() {
    assert!(start_result(|s| s.form_answers = answers(FORM_ANSWERS_MAX)).is_ok());
    assert_limit(
        start_result(|s| s.form_answers = answers(FORM_ANSWERS_MAX + 1)),
        "form_answers_max",
    );
    assert!(start_result(|s| s.routing_vars = vars(ROUTING_VARS_MAX)).is_ok());
    assert_limit(
        start_result(|s| s.routing_vars = vars(ROUTING_VARS_MAX + 1)),
        "routing_vars_max",
    );
    assert!(start_result(|s| s.page.vars = vars(PAGE_VARS_MAX)).is_ok());
    assert_limit(
        start_result(|s| s.page.vars = vars(PAGE_VARS_MAX + 1)),
        "page_vars_max",
    );
}

#[test]
fn c5_unattended_timeout_s_max() {
    assert!(
        start_result(|s| s.settings.unattended_timeout_s = Some(UNATTENDED_TIMEOUT_S_MAX)).is_ok()
    );
    assert_limit(
        start_result(|s| s.settings.unattended_timeout_s = Some(UNATTENDED_TIMEOUT_S_MAX + 1)),
        "unattended_timeout_s_max",
    );
}

#[test]
fn x3_rating_comment_bytes_max() {
    let rate = |n: usize| ChatCommand::Rate {
        command_id: cmd(50),
        score: 3,
        comment: Some("c".repeat(n)),
    };
    assert!(
        given::<Conversation>(&ended_chat())
            .when(&rate(RATING_COMMENT_BYTES_MAX), t(50))
            .result()
            .is_ok()
    );
    assert_limit(
        given::<Conversation>(&ended_chat())
            .when(&rate(RATING_COMMENT_BYTES_MAX + 1), t(50))
            .result(),
        "rating_comment_bytes_max",
    );
}

fn convert(template: BTreeMap<String, FieldValue>) -> ChatCommand {
    ChatCommand::ConvertToCase {
        command_id: cmd(900),
        by: AGENT_A,
        case_id: CaseId::from_u128(9),
        template,
    }
}

#[test]
fn a6_case_template_fields_max() {
    assert!(
        given::<Conversation>(&active_chat())
            .when(&convert(answers(CASE_TEMPLATE_FIELDS_MAX)), t(50))
            .result()
            .is_ok()
    );
    assert_limit(
        given::<Conversation>(&active_chat())
            .when(&convert(answers(CASE_TEMPLATE_FIELDS_MAX + 1)), t(50))
            .result(),
        "case_template_fields_max",
    );
}

#[test]
fn a6_case_messages_max_keeps_the_latest_messages() {
    let mut commands = vec![start(), assign(1, AGENT_A)];
    let total = CASE_MESSAGES_MAX + 5;
    commands.extend((0..total as u128).map(|i| say(10 + i, Party::Visitor, &format!("m{i}"))));
    let history = run(&commands);
    let events = given::<Conversation>(&history)
        .when(&convert(BTreeMap::new()), t(10_000))
        .result()
        .expect("accepted");
    let ChatEvent::CaseCreated { case, .. } = &events[0] else {
        panic!("expected CaseCreated");
    };
    assert_eq!(case.messages.len(), CASE_MESSAGES_MAX);
    assert_eq!(case.messages_total as usize, total);
    assert_eq!(
        case.messages[0].body.text, "m5",
        "the oldest five are left out"
    );
    assert_eq!(
        case.messages.last().map(|m| m.body.text.as_str()),
        Some(format!("m{}", total - 1).as_str())
    );
}

#[test]
fn a1_agent_capacity_max() {
    let set = |capacity| AgentCommand::SetCapacity {
        agent: AGENT_A,
        capacity,
    };
    assert!(Agent::decide(&Default::default(), &set(AGENT_CAPACITY_MAX), t(0)).is_ok());
    assert_eq!(
        Agent::decide(&Default::default(), &set(AGENT_CAPACITY_MAX + 1), t(0)),
        Err(AgentRejection::CapacityTooLarge {
            actual: AGENT_CAPACITY_MAX + 1
        })
    );
}
