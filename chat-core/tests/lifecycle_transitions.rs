//! Given/when/then tests of every chat transition and every rejection, named after the
//! requirement they prove (C1–C9, F5, A2, A3, A6, X3, X4, O2).

mod lifecycle_support;

use chat_core::conversation::{
    Admission, Article, AssignVia, ChatCommand, ChatEvent, ChatMessage, ChatSettings, Conversation,
    Disposition, EndedBy, MessageBody, OfflineReason, Party, Phase, QueueCause, Redaction,
    Rejection, next_deadline,
};
use chat_core::{CaseId, Decider, FieldValue, given};
use lifecycle_support::*;
use std::collections::BTreeMap;

fn ended(command: u128, at: i64, episode: u32, disposition: Disposition, by: Party) -> ChatEvent {
    ChatEvent::EpisodeEnded {
        command_id: cmd(command),
        at: t(at),
        episode,
        disposition,
        by,
    }
}

fn transcript(command: u128, at: i64, episode: u32) -> ChatEvent {
    ChatEvent::TranscriptEmailRequested {
        command_id: cmd(command),
        at: t(at),
        episode,
        to: EMAIL.to_owned(),
    }
}

fn posted(command: u128, at: i64, episode: u32, author: Party, body: MessageBody) -> ChatEvent {
    ChatEvent::MessagePosted {
        command_id: cmd(command),
        message: Box::new(ChatMessage {
            id: msg(command),
            episode,
            author,
            at: t(at),
            body,
            redaction: None,
        }),
    }
}

// ---- C1, M6, M9: start ----

#[test]
fn c1_start_records_visitor_data_and_form_answers_and_queues() {
    let ChatCommand::Start(start_cmd) = start() else {
        unreachable!()
    };
    let events = given::<Conversation>(&[])
        .when(&start(), t(0))
        .result()
        .expect("start accepted");
    let [ChatEvent::ChatStarted { record, .. }, queued] = events.as_slice() else {
        panic!("expected ChatStarted then ChatQueued, got {events:?}");
    };
    assert_eq!(record.chat, CHAT);
    assert_eq!(record.module, MODULE);
    assert_eq!(record.contact, CONTACT);
    assert_eq!(record.resume_token, "resume-token-1");
    assert_eq!(record.page, start_cmd.page, "M6 page data is kept");
    assert_eq!(record.form_answers, start_cmd.form_answers);
    assert_eq!(record.routing_vars, start_cmd.routing_vars);
    assert_eq!(record.origin, chat_core::conversation::Origin::Widget);
    assert_eq!(record.settings, settings());
    assert_eq!(
        queued,
        &ChatEvent::ChatQueued {
            command_id: cmd(0),
            at: t(0),
            episode: 1,
            cause: QueueCause::Started,
        }
    );
    let state = Conversation::replay(&events);
    assert_eq!(state.phase, Phase::Queued);
    assert_eq!(state.episode, 1);
}

#[test]
fn m9_chat_started_from_a_link_keeps_its_origin() {
    let mut start_cmd = start_with(settings(), open_module());
    start_cmd.origin = chat_core::conversation::Origin::Link;
    let events = run(&[ChatCommand::Start(Box::new(start_cmd))]);
    let state = Conversation::replay(&events);
    assert_eq!(
        state.record.expect("started").origin,
        chat_core::conversation::Origin::Link
    );
}

#[test]
fn c1_start_twice_is_refused() {
    given::<Conversation>(&queued_chat())
        .when(
            &ChatCommand::Start(Box::new({
                let mut s = start_with(settings(), open_module());
                s.command_id = cmd(99);
                s
            })),
            t(5),
        )
        .then_rejected(Rejection::AlreadyStarted);
}

#[test]
fn c1_commands_before_start_are_refused() {
    given::<Conversation>(&[])
        .when(&assign(1, AGENT_A), t(0))
        .then_rejected(Rejection::NotStarted);
    given::<Conversation>(&[])
        .when(&say(1, Party::Visitor, "hi"), t(0))
        .then_rejected(Rejection::NotStarted);
}

#[test]
fn c1_start_without_resume_token_is_refused() {
    let mut s = start_with(settings(), open_module());
    s.resume_token.clear();
    given::<Conversation>(&[])
        .when(&ChatCommand::Start(Box::new(s)), t(0))
        .then_rejected(Rejection::InvalidField {
            field: "resume_token",
            reason: "must not be empty",
        });
}

#[test]
fn c1_start_with_a_malformed_email_is_refused() {
    let mut s = start_with(settings(), open_module());
    s.contact_email = Some("not-an-address".to_owned());
    let rejection = given::<Conversation>(&[])
        .when(&ChatCommand::Start(Box::new(s)), t(0))
        .result()
        .expect_err("refused");
    assert_eq!(
        rejection.to_string(),
        "invalid contact_email: must contain @"
    );
}

// ---- C2: offline or queued, with the reason ----

fn start_admitted(admission: Admission) -> ChatCommand {
    ChatCommand::Start(Box::new(start_with(settings(), admission)))
}

#[test]
fn c2_outside_working_hours_goes_offline() {
    let admission = Admission {
        within_working_hours: false,
        ..open_module()
    };
    let events = given::<Conversation>(&[])
        .when(&start_admitted(admission), t(0))
        .result()
        .expect("accepted");
    assert_eq!(
        events[1],
        ended(
            0,
            0,
            1,
            Disposition::Offline {
                reason: OfflineReason::OutsideWorkingHours
            },
            Party::System
        )
    );
    assert_eq!(events.len(), 2, "no transcript for an offline chat");
    assert_eq!(Conversation::replay(&events).phase, Phase::Ended);
}

#[test]
fn c2_module_at_its_maximum_goes_offline_with_the_counts() {
    let admission = Admission {
        open_chats: 10,
        open_chats_max: Some(10),
        ..open_module()
    };
    let events = run(&[start_admitted(admission)]);
    assert_eq!(
        events[1],
        ended(
            0,
            0,
            1,
            Disposition::Offline {
                reason: OfflineReason::ModuleAtCapacity {
                    open_chats: 10,
                    open_chats_max: 10
                }
            },
            Party::System
        )
    );
}

#[test]
fn c2_below_the_maximum_or_unlimited_is_queued() {
    for admission in [
        Admission {
            open_chats: 9,
            open_chats_max: Some(10),
            ..open_module()
        },
        Admission {
            open_chats: 10_000,
            open_chats_max: None,
            ..open_module()
        },
    ] {
        let events = run(&[start_admitted(admission)]);
        assert!(matches!(
            events[1],
            ChatEvent::ChatQueued {
                cause: QueueCause::Started,
                ..
            }
        ));
    }
}

// ---- F5: blocking ----

#[test]
fn f5_blocked_contact_cannot_start() {
    let admission = Admission {
        contact_blocked: true,
        ..open_module()
    };
    given::<Conversation>(&[])
        .when(&start_admitted(admission), t(0))
        .then_rejected(Rejection::ContactBlocked);
}

#[test]
fn f5_blocking_ends_the_open_chat_with_disposition_blocked() {
    let state = given::<Conversation>(&active_chat())
        .when(
            &ChatCommand::Block {
                command_id: cmd(7),
                by: AGENT_A,
            },
            t(20),
        )
        .then_events(&[
            ChatEvent::ContactBlocked {
                command_id: cmd(7),
                at: t(20),
                contact: CONTACT,
                by: AGENT_A,
            },
            ended(7, 20, 1, Disposition::Blocked, Party::Agent(AGENT_A)),
        ]);
    assert!(state.blocked);
    assert_eq!(state.phase, Phase::Ended);
}

#[test]
fn f5_blocking_after_the_end_only_records_the_block() {
    given::<Conversation>(&ended_chat())
        .when(
            &ChatCommand::Block {
                command_id: cmd(7),
                by: AGENT_B,
            },
            t(50),
        )
        .then_events(&[ChatEvent::ContactBlocked {
            command_id: cmd(7),
            at: t(50),
            contact: CONTACT,
            by: AGENT_B,
        }]);
}

#[test]
fn f5_blocking_twice_is_refused() {
    let mut history = active_chat();
    history.extend(
        given::<Conversation>(&history)
            .when(
                &ChatCommand::Block {
                    command_id: cmd(7),
                    by: AGENT_A,
                },
                t(20),
            )
            .result()
            .expect("blocked"),
    );
    given::<Conversation>(&history)
        .when(
            &ChatCommand::Block {
                command_id: cmd(8),
                by: AGENT_A,
            },
            t(30),
        )
        .then_rejected(Rejection::AlreadyBlocked);
}

#[test]
fn f5_resume_of_a_blocked_visitor_is_refused() {
    let history = run(&[
        start(),
        assign(1, AGENT_A),
        ChatCommand::Block {
            command_id: cmd(2),
            by: AGENT_A,
        },
    ]);
    given::<Conversation>(&history)
        .when(&resume(3), t(100))
        .then_rejected(Rejection::ContactBlocked);
}

#[test]
fn f5_resume_is_refused_when_the_contact_was_blocked_elsewhere() {
    given::<Conversation>(&ended_chat())
        .when(
            &ChatCommand::Resume {
                command_id: cmd(9),
                admission: Admission {
                    contact_blocked: true,
                    ..open_module()
                },
            },
            t(100),
        )
        .then_rejected(Rejection::ContactBlocked);
}

// ---- C3: unmanaged and asynchronous chatting ----

fn no_agent(n: u128) -> ChatCommand {
    ChatCommand::NoAgentAvailable {
        command_id: cmd(n),
        case_id: CaseId::from_u128(77),
        case_template: BTreeMap::from([(
            "priority".to_owned(),
            FieldValue::Text("normal".to_owned()),
        )]),
    }
}

#[test]
fn c3_no_agent_without_async_chatting_makes_the_chat_unmanaged() {
    given::<Conversation>(&queued_chat())
        .when(&no_agent(1), t(30))
        .then_events(&[ended(1, 30, 1, Disposition::Unmanaged, Party::System)]);
}

#[test]
fn c3_no_agent_with_async_chatting_keeps_the_chat_open_for_the_visitor() {
    let async_settings = ChatSettings {
        async_chatting: true,
        ..settings()
    };
    let history = run(&[start_settings(async_settings)]);
    let state = given::<Conversation>(&history)
        .when(&no_agent(1), t(30))
        .then_events(&[ChatEvent::AsyncChattingStarted {
            command_id: cmd(1),
            at: t(30),
            episode: 1,
        }]);
    assert_eq!(state.phase, Phase::AsyncOpen);
    let mut history = history;
    history.push(ChatEvent::AsyncChattingStarted {
        command_id: cmd(1),
        at: t(30),
        episode: 1,
    });
    given::<Conversation>(&history)
        .when(&say(2, Party::Visitor, "Still there?"), t(4000))
        .then_events(&[posted(
            2,
            4000,
            1,
            Party::Visitor,
            MessageBody::text("Still there?"),
        )]);
}

fn async_chat_with_email(email: Option<&str>) -> Vec<ChatEvent> {
    let mut s = start_with(
        ChatSettings {
            async_chatting: true,
            ..settings()
        },
        open_module(),
    );
    s.contact_email = email.map(str::to_owned);
    run(&[
        ChatCommand::Start(Box::new(s)),
        no_agent(1),
        say(2, Party::Visitor, "I need help tomorrow"),
        ChatCommand::Assign {
            command_id: cmd(3),
            agent: AGENT_A,
            manual_pick: true,
        },
    ])
}

#[test]
fn c3_first_agent_reply_in_an_async_chat_requests_an_email_once() {
    let history = async_chat_with_email(Some(EMAIL));
    let reply = say(4, Party::Agent(AGENT_A), "Here is your answer");
    let state = given::<Conversation>(&history)
        .when(&reply, t(9000))
        .then_events(&[
            posted(
                4,
                9000,
                1,
                Party::Agent(AGENT_A),
                MessageBody::text("Here is your answer"),
            ),
            ChatEvent::AsyncReplyEmailRequested {
                command_id: cmd(4),
                at: t(9000),
                episode: 1,
                to: EMAIL.to_owned(),
                message_id: msg(4),
            },
        ]);
    assert!(!state.awaiting_async_reply);
    let mut history = history;
    history.extend(Conversation::decide(&Conversation::replay(&history), &reply, t(9000)).unwrap());
    given::<Conversation>(&history)
        .when(
            &say(5, Party::Agent(AGENT_A), "And one more thing"),
            t(9010),
        )
        .then_events(&[posted(
            5,
            9010,
            1,
            Party::Agent(AGENT_A),
            MessageBody::text("And one more thing"),
        )]);
}

#[test]
fn c3_async_reply_without_a_known_email_requests_nothing() {
    given::<Conversation>(&async_chat_with_email(None))
        .when(&say(4, Party::Agent(AGENT_A), "Answer"), t(9000))
        .then_events(&[posted(
            4,
            9000,
            1,
            Party::Agent(AGENT_A),
            MessageBody::text("Answer"),
        )]);
}

#[test]
fn c3_no_agent_report_on_an_assigned_chat_is_refused() {
    given::<Conversation>(&active_chat())
        .when(&no_agent(2), t(30))
        .then_rejected(Rejection::NotWaiting {
            refused: "no-agent reports",
        });
    given::<Conversation>(&ended_chat())
        .when(&no_agent(9), t(90))
        .then_rejected(Rejection::ChatEnded {
            refused: "no-agent reports",
        });
}

// ---- A6: cases ----

#[test]
fn a6_no_agent_with_the_case_option_turns_the_chat_into_a_case() {
    let case_settings = ChatSettings {
        case_when_no_agent: true,
        ..settings()
    };
    let history = run(&[
        start_settings(case_settings),
        say(1, Party::Visitor, "Anyone?"),
    ]);
    let events = given::<Conversation>(&history)
        .when(&no_agent(2), t(60))
        .result()
        .expect("accepted");
    let ChatEvent::CaseCreated { case, episode, .. } = &events[0] else {
        panic!("expected CaseCreated first, got {events:?}");
    };
    assert_eq!(*episode, 1);
    assert_eq!(case.case_id, CaseId::from_u128(77));
    assert_eq!(case.contact, CONTACT);
    assert_eq!(case.contact_email.as_deref(), Some(EMAIL));
    assert_eq!(case.requested_by, None);
    assert_eq!(case.messages.len(), 1);
    assert_eq!(case.messages[0].body.text, "Anyone?");
    assert_eq!(case.form_answers.len(), 1);
    assert_eq!(
        case.template.get("priority"),
        Some(&FieldValue::Text("normal".to_owned()))
    );
    assert_eq!(
        events[1],
        ended(
            2,
            60,
            1,
            Disposition::Case {
                case_id: CaseId::from_u128(77)
            },
            Party::System
        )
    );
    assert_eq!(events[2], transcript(2, 60, 1));
}

#[test]
fn a6_async_chatting_takes_precedence_over_the_case_option() {
    let both = ChatSettings {
        case_when_no_agent: true,
        async_chatting: true,
        ..settings()
    };
    let events = run(&[start_settings(both), no_agent(1)]);
    assert!(matches!(
        events.last(),
        Some(ChatEvent::AsyncChattingStarted { .. })
    ));
}

#[test]
fn a6_agent_converts_the_chat_into_a_case_without_redacted_content() {
    let history = run(&[
        start(),
        assign(1, AGENT_A),
        say(2, Party::Visitor, "my card number is 4111"),
        ChatCommand::Redact {
            command_id: cmd(3),
            by: AGENT_A,
            message_id: msg(2),
        },
        say(4, Party::Agent(AGENT_A), "I'll open a ticket"),
    ]);
    let events = given::<Conversation>(&history)
        .when(
            &ChatCommand::ConvertToCase {
                command_id: cmd(5),
                by: AGENT_A,
                case_id: CaseId::from_u128(88),
                template: BTreeMap::from([(
                    "category".to_owned(),
                    FieldValue::Text("billing".to_owned()),
                )]),
            },
            t(100),
        )
        .result()
        .expect("accepted");
    let ChatEvent::CaseCreated { case, .. } = &events[0] else {
        panic!("expected CaseCreated, got {events:?}");
    };
    assert_eq!(case.requested_by, Some(AGENT_A));
    assert_eq!(case.messages.len(), 2);
    assert_eq!(case.messages[0].body, MessageBody::default(), "X4 applies");
    assert!(case.messages[0].redaction.is_some());
    assert_eq!(case.messages[1].body.text, "I'll open a ticket");
    assert_eq!(case.messages_total, 2);
    assert_eq!(
        events[1],
        ended(
            5,
            100,
            1,
            Disposition::Case {
                case_id: CaseId::from_u128(88)
            },
            Party::Agent(AGENT_A)
        )
    );
}

#[test]
fn a6_converting_an_ended_chat_is_refused() {
    given::<Conversation>(&ended_chat())
        .when(
            &ChatCommand::ConvertToCase {
                command_id: cmd(9),
                by: AGENT_A,
                case_id: CaseId::from_u128(88),
                template: BTreeMap::new(),
            },
            t(100),
        )
        .then_rejected(Rejection::ChatEnded { refused: "cases" });
}

// ---- C4, A2: assignment and messages ----

#[test]
fn c4_assignment_by_routing_makes_the_chat_active() {
    let state = given::<Conversation>(&queued_chat())
        .when(&assign(1, AGENT_A), t(10))
        .then_events(&[ChatEvent::AgentAssigned {
            command_id: cmd(1),
            at: t(10),
            episode: 1,
            agent: AGENT_A,
            via: AssignVia::Routing,
        }]);
    assert_eq!(state.phase, Phase::Active);
    assert_eq!(state.agent, Some(AGENT_A));
}

#[test]
fn a2_an_agent_picks_a_waiting_chat_by_hand() {
    given::<Conversation>(&queued_chat())
        .when(
            &ChatCommand::Assign {
                command_id: cmd(1),
                agent: AGENT_B,
                manual_pick: true,
            },
            t(10),
        )
        .then_events(&[ChatEvent::AgentAssigned {
            command_id: cmd(1),
            at: t(10),
            episode: 1,
            agent: AGENT_B,
            via: AssignVia::ManualPick,
        }]);
}

#[test]
fn c4_double_assignment_is_refused() {
    let rejection = given::<Conversation>(&active_chat())
        .when(&assign(2, AGENT_B), t(20))
        .result()
        .expect_err("refused");
    assert_eq!(rejection, Rejection::AlreadyAssigned { agent: AGENT_A });
    assert!(rejection.to_string().contains("double assignment refused"));
}

#[test]
fn c4_assignment_after_the_end_is_refused() {
    given::<Conversation>(&ended_chat())
        .when(&assign(9, AGENT_B), t(90))
        .then_rejected(Rejection::ChatEnded {
            refused: "assignments",
        });
}

#[test]
fn c4_messages_from_visitor_agent_and_system_are_kept_in_order() {
    let events = run(&[
        start(),
        say(1, Party::Visitor, "Hello"),
        assign(2, AGENT_A),
        say(3, Party::System, "Agent A joined"),
        say(4, Party::Agent(AGENT_A), "Hi!"),
        say(5, Party::Visitor, "Thanks"),
    ]);
    let state = Conversation::replay(&events);
    let texts: Vec<(&str, Party)> = state
        .messages
        .iter()
        .map(|m| (m.body.text.as_str(), m.author))
        .collect();
    assert_eq!(
        texts,
        vec![
            ("Hello", Party::Visitor),
            ("Agent A joined", Party::System),
            ("Hi!", Party::Agent(AGENT_A)),
            ("Thanks", Party::Visitor),
        ]
    );
    assert_eq!(state.messages[0].id, msg(1));
    assert_eq!(state.messages[0].at, t(10));
}

#[test]
fn c4_agent_message_in_an_unassigned_chat_is_refused() {
    given::<Conversation>(&queued_chat())
        .when(&say(1, Party::Agent(AGENT_A), "Hi"), t(10))
        .then_rejected(Rejection::NotAssigned {
            refused: "agent messages",
        });
}

#[test]
fn c4_message_from_an_agent_who_does_not_hold_the_chat_is_refused() {
    given::<Conversation>(&active_chat())
        .when(&say(2, Party::Agent(AGENT_B), "Hi"), t(20))
        .then_rejected(Rejection::NotTheAssignedAgent {
            agent: AGENT_B,
            action: "post agent messages",
        });
}

#[test]
fn c4_a_message_id_is_used_once_per_chat() {
    let history = run(&[start(), say(1, Party::Visitor, "one")]);
    given::<Conversation>(&history)
        .when(
            &ChatCommand::PostMessage {
                command_id: cmd(2),
                message_id: msg(1),
                author: Party::Visitor,
                body: MessageBody::text("two"),
            },
            t(20),
        )
        .then_rejected(Rejection::DuplicateMessageId { message_id: msg(1) });
}

#[test]
fn c4_an_empty_message_is_refused() {
    given::<Conversation>(&queued_chat())
        .when(&say(1, Party::Visitor, ""), t(10))
        .then_rejected(Rejection::EmptyMessage);
}

#[test]
fn c4_attachments_are_refused_when_the_module_allows_none() {
    let history = run(&[start_settings(ChatSettings {
        attachment_bytes_max: 0,
        ..settings()
    })]);
    let body = MessageBody {
        attachments: vec![chat_core::AttachmentMeta {
            file_name: "a.pdf".to_owned(),
            content_type: "application/pdf".to_owned(),
            size_bytes: 1,
            storage_key: "k".to_owned(),
        }],
        ..MessageBody::default()
    };
    given::<Conversation>(&history)
        .when(
            &ChatCommand::PostMessage {
                command_id: cmd(1),
                message_id: msg(1),
                author: Party::Visitor,
                body,
            },
            t(10),
        )
        .then_rejected(Rejection::LimitExceeded {
            limit: "attachment_bytes_max",
            max: 0,
            actual: 1,
        });
}

#[test]
fn a3_agent_sends_an_article_quick_replies_and_a_video_call_link() {
    let body = MessageBody {
        text: "See this".to_owned(),
        attachments: vec![],
        quick_replies: vec!["Yes".to_owned(), "No".to_owned()],
        article: Some(Article {
            title: "Resetting your password".to_owned(),
            link: Some("https://help.example.org/reset".to_owned()),
            body: None,
        }),
        video_call_link: Some("https://meet.example.org/abc".to_owned()),
    };
    let command = ChatCommand::PostMessage {
        command_id: cmd(2),
        message_id: msg(2),
        author: Party::Agent(AGENT_A),
        body: body.clone(),
    };
    let state = given::<Conversation>(&active_chat())
        .when(&command, t(20))
        .then_events(&[posted(2, 20, 1, Party::Agent(AGENT_A), body.clone())]);
    assert_eq!(state.messages[0].body, body);
}

#[test]
fn a3_visitors_cannot_send_quick_replies_articles_or_video_links() {
    let cases = [
        (
            MessageBody {
                quick_replies: vec!["Yes".to_owned()],
                ..MessageBody::text("x")
            },
            "quick replies",
        ),
        (
            MessageBody {
                article: Some(Article {
                    title: "T".to_owned(),
                    link: None,
                    body: Some("b".to_owned()),
                }),
                ..MessageBody::default()
            },
            "articles",
        ),
        (
            MessageBody {
                video_call_link: Some("https://meet".to_owned()),
                ..MessageBody::default()
            },
            "video-call links",
        ),
    ];
    for (body, what) in cases {
        given::<Conversation>(&active_chat())
            .when(
                &ChatCommand::PostMessage {
                    command_id: cmd(2),
                    message_id: msg(2),
                    author: Party::Visitor,
                    body,
                },
                t(20),
            )
            .then_rejected(Rejection::VisitorCannotSend { what });
    }
}

#[test]
fn a3_a_visitor_is_refused_for_rights_before_sizes() {
    let body = MessageBody {
        quick_replies: vec!["x".repeat(1000); 50],
        ..MessageBody::text("x")
    };
    given::<Conversation>(&active_chat())
        .when(
            &ChatCommand::PostMessage {
                command_id: cmd(2),
                message_id: msg(2),
                author: Party::Visitor,
                body,
            },
            t(20),
        )
        .then_rejected(Rejection::VisitorCannotSend {
            what: "quick replies",
        });
}

#[test]
fn a3_an_article_needs_a_title() {
    let body = MessageBody {
        article: Some(Article::default()),
        ..MessageBody::default()
    };
    given::<Conversation>(&active_chat())
        .when(
            &ChatCommand::PostMessage {
                command_id: cmd(2),
                message_id: msg(2),
                author: Party::Agent(AGENT_A),
                body,
            },
            t(20),
        )
        .then_rejected(Rejection::InvalidField {
            field: "article.title",
            reason: "must not be empty",
        });
}

#[test]
fn c6_message_after_the_end_is_refused() {
    let rejection = given::<Conversation>(&ended_chat())
        .when(&say(9, Party::Visitor, "one more thing"), t(90))
        .result()
        .expect_err("refused");
    assert_eq!(
        rejection,
        Rejection::ChatEnded {
            refused: "messages"
        }
    );
    assert_eq!(
        rejection.to_string(),
        "chat has ended: messages are refused"
    );
}

// ---- C5: the unattended timeout ----

#[test]
fn c5_a_chat_waiting_in_the_queue_past_the_deadline_times_out() {
    let history = queued_chat();
    assert_eq!(
        next_deadline(&Conversation::replay(&history)),
        Some(t(TIMEOUT_S as i64)),
        "the clock starts at queue entry"
    );
    given::<Conversation>(&history)
        .when(&tick(1), t(TIMEOUT_S as i64))
        .then_events(&[ended(
            1,
            TIMEOUT_S as i64,
            1,
            Disposition::Timeout,
            Party::System,
        )]);
}

#[test]
fn c5_a_tick_before_the_deadline_is_refused() {
    given::<Conversation>(&queued_chat())
        .when(&tick(1), t(TIMEOUT_S as i64 - 1))
        .then_rejected(Rejection::TimeoutNotDue {
            deadline: Some(t(TIMEOUT_S as i64)),
        });
}

#[test]
fn c5_timeout_after_the_agent_answered_in_time_is_refused() {
    let history = run(&[
        start(),
        assign(1, AGENT_A),
        say(2, Party::Visitor, "Hello?"),
        say(3, Party::Agent(AGENT_A), "Hi"),
    ]);
    let state = Conversation::replay(&history);
    assert_eq!(next_deadline(&state), None, "nothing waits for the agent");
    given::<Conversation>(&history)
        .when(&tick(4), t(10_000))
        .then_rejected(Rejection::TimeoutNotDue { deadline: None });
}

#[test]
fn c5_the_oldest_unanswered_visitor_message_starts_the_clock() {
    let history = run_at(&[
        (start(), t(0)),
        (assign(1, AGENT_A), t(10)),
        (say(2, Party::Agent(AGENT_A), "Hi"), t(20)),
        (say(3, Party::Visitor, "Question one"), t(100)),
        (say(4, Party::Visitor, "Question two"), t(200)),
    ]);
    let deadline = t(100 + TIMEOUT_S as i64);
    assert_eq!(
        next_deadline(&Conversation::replay(&history)),
        Some(deadline)
    );
    given::<Conversation>(&history)
        .when(&tick(5), deadline)
        .then_events(&[
            ended(
                5,
                100 + TIMEOUT_S as i64,
                1,
                Disposition::Timeout,
                Party::System,
            ),
            transcript(5, 100 + TIMEOUT_S as i64, 1),
        ]);
}

#[test]
fn c5_assignment_restarts_the_clock() {
    let history = run_at(&[(start(), t(0)), (assign(1, AGENT_A), t(250))]);
    assert_eq!(
        next_deadline(&Conversation::replay(&history)),
        Some(t(250 + TIMEOUT_S as i64))
    );
    given::<Conversation>(&history)
        .when(&tick(2), t(TIMEOUT_S as i64))
        .then_rejected(Rejection::TimeoutNotDue {
            deadline: Some(t(250 + TIMEOUT_S as i64)),
        });
}

#[test]
fn c5_async_chats_and_modules_without_timeout_have_no_deadline() {
    let async_history = run(&[
        start_settings(ChatSettings {
            async_chatting: true,
            ..settings()
        }),
        no_agent(1),
        say(2, Party::Visitor, "hello"),
    ]);
    assert_eq!(next_deadline(&Conversation::replay(&async_history)), None);
    given::<Conversation>(&async_history)
        .when(&tick(3), t(1_000_000))
        .then_rejected(Rejection::TimeoutNotDue { deadline: None });
    let no_timeout = run(&[start_settings(ChatSettings {
        unattended_timeout_s: None,
        ..settings()
    })]);
    assert_eq!(next_deadline(&Conversation::replay(&no_timeout)), None);
}

#[test]
fn c5_a_tick_after_the_end_is_refused() {
    given::<Conversation>(&ended_chat())
        .when(&tick(9), t(100_000))
        .then_rejected(Rejection::ChatEnded {
            refused: "timeouts",
        });
}

// ---- C6, O2: ending ----

#[test]
fn c6_visitor_ends_a_handled_chat_managed_and_gets_the_transcript() {
    let history = run(&[start(), assign(1, AGENT_A), say(2, Party::Visitor, "bye")]);
    let state = given::<Conversation>(&history)
        .when(&end(3, EndedBy::Visitor), t(30))
        .then_events(&[
            ended(3, 30, 1, Disposition::Managed, Party::Visitor),
            transcript(3, 30, 1),
        ]);
    assert_eq!(state.phase, Phase::Ended);
    assert_eq!(state.agent, None);
    assert_eq!(state.disposition, Some(Disposition::Managed));
}

#[test]
fn c6_the_agent_leaving_ends_the_chat_for_the_visitor() {
    given::<Conversation>(&active_chat())
        .when(&end(2, EndedBy::Agent(AGENT_A)), t(20))
        .then_events(&[ended(2, 20, 1, Disposition::Managed, Party::Agent(AGENT_A))]);
}

#[test]
fn c6_a_visitor_leaving_the_queue_abandons_the_chat() {
    given::<Conversation>(&queued_chat())
        .when(&end(1, EndedBy::Visitor), t(10))
        .then_events(&[ended(1, 10, 1, Disposition::Abandoned, Party::Visitor)]);
}

#[test]
fn c6_an_agent_who_does_not_hold_the_chat_cannot_end_it() {
    given::<Conversation>(&active_chat())
        .when(&end(2, EndedBy::Agent(AGENT_B)), t(20))
        .then_rejected(Rejection::NotTheAssignedAgent {
            agent: AGENT_B,
            action: "end the chat",
        });
    given::<Conversation>(&queued_chat())
        .when(&end(2, EndedBy::Agent(AGENT_B)), t(20))
        .then_rejected(Rejection::NotAssigned {
            refused: "agent ends",
        });
}

#[test]
fn c6_ending_twice_is_refused() {
    given::<Conversation>(&ended_chat())
        .when(&end(9, EndedBy::Visitor), t(90))
        .then_rejected(Rejection::ChatEnded { refused: "ends" });
}

#[test]
fn o2_no_transcript_without_a_known_email_or_when_transcripts_are_off() {
    let mut s = start_with(settings(), open_module());
    s.contact_email = None;
    let history = run(&[
        ChatCommand::Start(Box::new(s)),
        say(1, Party::Visitor, "hi"),
    ]);
    given::<Conversation>(&history)
        .when(&end(2, EndedBy::Visitor), t(20))
        .then_events(&[ended(2, 20, 1, Disposition::Abandoned, Party::Visitor)]);
    let off = run(&[
        start_settings(ChatSettings {
            transcript_email: false,
            ..settings()
        }),
        say(1, Party::Visitor, "hi"),
    ]);
    given::<Conversation>(&off)
        .when(&end(2, EndedBy::Visitor), t(20))
        .then_events(&[ended(2, 20, 1, Disposition::Abandoned, Party::Visitor)]);
}

// ---- X3: rating ----

fn rate(n: u128, score: u8) -> ChatCommand {
    ChatCommand::Rate {
        command_id: cmd(n),
        score,
        comment: Some("quick and kind".to_owned()),
    }
}

#[test]
fn x3_the_visitor_rates_the_ended_chat() {
    let state = given::<Conversation>(&ended_chat())
        .when(&rate(5, 5), t(50))
        .then_events(&[ChatEvent::ChatRated {
            command_id: cmd(5),
            at: t(50),
            episode: 1,
            agent: AGENT_A,
            score: 5,
            comment: Some("quick and kind".to_owned()),
        }]);
    assert!(state.rated);
}

#[test]
fn x3_rating_twice_is_refused() {
    let mut history = ended_chat();
    history.extend(run_after(&history, &rate(5, 4), t(50)));
    given::<Conversation>(&history)
        .when(&rate(6, 1), t(60))
        .then_rejected(Rejection::AlreadyRated);
}

#[test]
fn x3_rating_an_open_chat_or_one_without_agent_is_refused() {
    given::<Conversation>(&active_chat())
        .when(&rate(5, 5), t(50))
        .then_rejected(Rejection::ChatOpen { refused: "ratings" });
    let abandoned = run(&[start(), end(1, EndedBy::Visitor)]);
    given::<Conversation>(&abandoned)
        .when(&rate(5, 5), t(50))
        .then_rejected(Rejection::NoAgentToRate);
}

#[test]
fn x3_a_score_outside_one_to_five_is_refused() {
    for score in [0, 6] {
        given::<Conversation>(&ended_chat())
            .when(&rate(5, score), t(50))
            .then_rejected(Rejection::RatingOutOfRange { score });
    }
}

// ---- C7: resume ----

fn run_after(
    history: &[ChatEvent],
    command: &ChatCommand,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<ChatEvent> {
    Conversation::decide(&Conversation::replay(history), command, at).expect("accepted")
}

#[test]
fn c7_resume_reenters_the_queue_in_the_same_chat_as_a_new_episode() {
    let mut history = ended_chat();
    history.extend(run_after(&history, &rate(5, 4), t(50)));
    let state = given::<Conversation>(&history)
        .when(&resume(6), t(1000))
        .then_events(&[
            ChatEvent::ChatResumed {
                command_id: cmd(6),
                at: t(1000),
                episode: 2,
            },
            ChatEvent::ChatQueued {
                command_id: cmd(6),
                at: t(1000),
                episode: 2,
                cause: QueueCause::Resumed,
            },
        ]);
    assert_eq!(state.phase, Phase::Queued);
    assert_eq!(state.episode, 2);
    assert_eq!(state.record.as_ref().map(|r| r.chat), Some(CHAT));
    assert_eq!(state.messages.len(), 2, "the earlier messages stay");
    assert!(!state.rated, "the new episode can be rated again");
    assert_eq!(state.disposition, None);
}

#[test]
fn c7_resume_outside_working_hours_goes_offline() {
    let events = given::<Conversation>(&ended_chat())
        .when(
            &ChatCommand::Resume {
                command_id: cmd(6),
                admission: Admission {
                    within_working_hours: false,
                    ..open_module()
                },
            },
            t(1000),
        )
        .result()
        .expect("accepted");
    assert_eq!(
        events[1],
        ended(
            6,
            1000,
            2,
            Disposition::Offline {
                reason: OfflineReason::OutsideWorkingHours
            },
            Party::System
        )
    );
}

#[test]
fn c7_resuming_an_open_chat_is_refused() {
    given::<Conversation>(&active_chat())
        .when(&resume(6), t(100))
        .then_rejected(Rejection::ChatOpen { refused: "resumes" });
}

// ---- A3: transfers ----

#[test]
fn a3_transfer_to_another_agent() {
    let state = given::<Conversation>(&active_chat())
        .when(
            &ChatCommand::TransferToAgent {
                command_id: cmd(2),
                by: AGENT_A,
                to: AGENT_B,
            },
            t(20),
        )
        .then_events(&[ChatEvent::AgentAssigned {
            command_id: cmd(2),
            at: t(20),
            episode: 1,
            agent: AGENT_B,
            via: AssignVia::Transfer { from: AGENT_A },
        }]);
    assert_eq!(state.agent, Some(AGENT_B));
}

#[test]
fn a3_transfer_to_a_queue() {
    let state = given::<Conversation>(&active_chat())
        .when(
            &ChatCommand::TransferToQueue {
                command_id: cmd(2),
                by: AGENT_A,
                queue: QUEUE,
            },
            t(20),
        )
        .then_events(&[ChatEvent::ChatQueued {
            command_id: cmd(2),
            at: t(20),
            episode: 1,
            cause: QueueCause::Transferred {
                from: AGENT_A,
                queue: QUEUE,
            },
        }]);
    assert_eq!(state.phase, Phase::Queued);
    assert_eq!(state.queue, Some(QUEUE));
    assert_eq!(state.agent, None);
}

#[test]
fn a3_transfer_of_an_unassigned_chat_is_refused() {
    given::<Conversation>(&queued_chat())
        .when(
            &ChatCommand::TransferToAgent {
                command_id: cmd(2),
                by: AGENT_A,
                to: AGENT_B,
            },
            t(20),
        )
        .then_rejected(Rejection::NotAssigned {
            refused: "transfers",
        });
    given::<Conversation>(&queued_chat())
        .when(
            &ChatCommand::TransferToQueue {
                command_id: cmd(2),
                by: AGENT_A,
                queue: QUEUE,
            },
            t(20),
        )
        .then_rejected(Rejection::NotAssigned {
            refused: "transfers",
        });
}

#[test]
fn a3_transfer_by_another_agent_or_to_oneself_is_refused() {
    given::<Conversation>(&active_chat())
        .when(
            &ChatCommand::TransferToAgent {
                command_id: cmd(2),
                by: AGENT_B,
                to: AGENT_B,
            },
            t(20),
        )
        .then_rejected(Rejection::NotTheAssignedAgent {
            agent: AGENT_B,
            action: "transfer the chat",
        });
    given::<Conversation>(&active_chat())
        .when(
            &ChatCommand::TransferToAgent {
                command_id: cmd(2),
                by: AGENT_A,
                to: AGENT_A,
            },
            t(20),
        )
        .then_rejected(Rejection::TransferToSelf { agent: AGENT_A });
}

#[test]
fn a3_transfer_of_an_ended_chat_is_refused() {
    given::<Conversation>(&ended_chat())
        .when(
            &ChatCommand::TransferToQueue {
                command_id: cmd(9),
                by: AGENT_A,
                queue: QUEUE,
            },
            t(90),
        )
        .then_rejected(Rejection::ChatEnded {
            refused: "transfers",
        });
}

// ---- X4: redaction ----

fn redact(n: u128, message: u128) -> ChatCommand {
    ChatCommand::Redact {
        command_id: cmd(n),
        by: AGENT_B,
        message_id: msg(message),
    }
}

#[test]
fn x4_redaction_records_who_when_and_which_message() {
    let state = given::<Conversation>(&ended_chat())
        .when(&redact(9, 2), t(500))
        .then_events(&[ChatEvent::MessageRedacted {
            command_id: cmd(9),
            at: t(500),
            message_id: msg(2),
            by: AGENT_B,
        }]);
    let message = &state.messages[0];
    assert_eq!(
        message.redaction,
        Some(Redaction {
            by: AGENT_B,
            at: t(500)
        })
    );
    assert_eq!(message.for_readers().body, MessageBody::default());
}

#[test]
fn x4_redacting_an_unknown_or_redacted_message_is_refused() {
    given::<Conversation>(&ended_chat())
        .when(&redact(9, 42), t(500))
        .then_rejected(Rejection::UnknownMessage {
            message_id: msg(42),
        });
    let mut history = ended_chat();
    history.extend(run_after(&history, &redact(9, 2), t(500)));
    given::<Conversation>(&history)
        .when(&redact(10, 2), t(600))
        .then_rejected(Rejection::AlreadyRedacted { message_id: msg(2) });
}

// ---- C9: idempotency ----

#[test]
fn c9_a_retried_command_records_nothing_new() {
    let history = ended_chat();
    for retry in [
        start(),
        assign(1, AGENT_A),
        say(2, Party::Visitor, "Hello?"),
        end(4, EndedBy::Visitor),
    ] {
        given::<Conversation>(&history)
            .when(&retry, t(1000))
            .then_events(&[]);
    }
}

#[test]
fn c9_a_retry_is_recognised_after_a_rebuild_from_the_log() {
    // The ids are recorded in the events, so a state rebuilt from them remembers them.
    let history = active_chat();
    let rebuilt = Conversation::replay(&history);
    assert!(rebuilt.accepted_commands.contains(&cmd(0)));
    assert!(rebuilt.accepted_commands.contains(&cmd(1)));
    assert_eq!(
        Conversation::decide(&rebuilt, &assign(1, AGENT_A), t(999)),
        Ok(vec![])
    );
}

#[test]
fn c9_a_refused_command_is_not_remembered() {
    let history = queued_chat();
    let refused = say(1, Party::Agent(AGENT_A), "hi");
    assert!(Conversation::decide(&Conversation::replay(&history), &refused, t(5)).is_err());
    // The same id on a later, legal command is still accepted.
    given::<Conversation>(&history)
        .when(&say(1, Party::Visitor, "hi"), t(6))
        .then_events(&[posted(1, 6, 1, Party::Visitor, MessageBody::text("hi"))]);
}

// ---- Every rejection names its rule ----

#[test]
fn every_rejection_message_names_its_rule() {
    let cases = [
        (
            Rejection::NotStarted,
            "chat has not started: only Start is accepted",
        ),
        (
            Rejection::AlreadyStarted,
            "chat has already started: Start is accepted once per chat",
        ),
        (
            Rejection::ContactBlocked,
            "contact is blocked: a blocked visitor cannot start or resume a chat",
        ),
        (
            Rejection::ChatEnded {
                refused: "messages",
            },
            "chat has ended: messages are refused",
        ),
        (
            Rejection::ChatOpen { refused: "ratings" },
            "chat is still open: ratings need an ended chat",
        ),
        (
            Rejection::NotWaiting {
                refused: "no-agent reports",
            },
            "chat is not waiting for an agent: no-agent reports are refused",
        ),
        (
            Rejection::NotAssigned {
                refused: "transfers",
            },
            "chat has no agent: transfers are refused",
        ),
        (
            Rejection::TimeoutNotDue { deadline: None },
            "unattended timeout is not due: deadline none",
        ),
        (
            Rejection::TimeoutNotDue {
                deadline: Some(t(0)),
            },
            "unattended timeout is not due: deadline 2023-11-14T22:13:20+00:00",
        ),
        (
            Rejection::AlreadyRated,
            "episode already rated: one rating per episode",
        ),
        (
            Rejection::NoAgentToRate,
            "nothing to rate: no agent took part in this episode",
        ),
        (
            Rejection::RatingOutOfRange { score: 9 },
            "rating score 9 is outside 1..=5",
        ),
        (
            Rejection::AlreadyBlocked,
            "visitor is already blocked in this chat",
        ),
        (
            Rejection::EmptyMessage,
            "message is empty: text, an attachment, an article or a video-call link is needed",
        ),
        (
            Rejection::VisitorCannotSend {
                what: "quick replies",
            },
            "visitors cannot send quick replies: only agents and the system may",
        ),
        (
            Rejection::LimitExceeded {
                limit: "message_text_bytes_max",
                max: 4096,
                actual: 5000,
            },
            "limit exceeded: message_text_bytes_max is 4096, got 5000",
        ),
    ];
    for (rejection, message) in cases {
        assert_eq!(rejection.to_string(), message);
    }
    let agent_rules = [
        Rejection::AlreadyAssigned { agent: AGENT_A }.to_string(),
        Rejection::NotTheAssignedAgent {
            agent: AGENT_B,
            action: "end the chat",
        }
        .to_string(),
        Rejection::TransferToSelf { agent: AGENT_A }.to_string(),
        Rejection::UnknownMessage { message_id: msg(1) }.to_string(),
        Rejection::AlreadyRedacted { message_id: msg(1) }.to_string(),
        Rejection::DuplicateMessageId { message_id: msg(1) }.to_string(),
    ];
    assert!(agent_rules[0].ends_with("double assignment refused"));
    assert!(agent_rules[1].ends_with("only the assigned agent may end the chat"));
    assert!(agent_rules[2].starts_with("transfer to the chat's own agent"));
    assert!(agent_rules[3].ends_with("is not in this chat: redaction refused"));
    assert!(agent_rules[4].ends_with("is already redacted"));
    assert!(agent_rules[5].ends_with("is already used in this chat"));
}
