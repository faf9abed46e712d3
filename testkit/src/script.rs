//! The script: which reply the stand-in model gives to which chat-completions request.
//!
//! A [`Script`] is a list of [`Step`]s, each one model reply: a tool call or a text. The step a
//! request gets is read from the conversation the request carries, not from a counter kept by
//! the server: a request whose `messages` already hold *n* assistant messages (n earlier model
//! replies in that conversation) gets step *n*. So the first request of a turn gets step 0; after
//! opencode ran the tool of step 0, its next request carries that assistant tool call and the
//! tool's result, and gets step 1; and so on. The consequences, all deliberate:
//!
//! - a retried request gets the same step again (nothing is consumed);
//! - every new session starts at step 0, so one stand-in can serve many sessions and tests;
//! - a second prompt in the same session continues the script where the first turn ended.
//!
//! Requests that offer no tools are opencode's helper calls (the session title), not agent
//! steps: they get [`Script::untooled`] and do not take part in the stepping.
//!
//! When the conversation is past the last step, the reply is [`Script::exhausted`], a text by
//! default, so an agent loop always ends instead of calling tools forever.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StandInError;

/// The file the default script writes, relative to the workspace.
pub const DEFAULT_FILE: &str = "standin.txt";
/// What the default script writes into [`DEFAULT_FILE`].
pub const DEFAULT_CONTENT: &str = "written by the stand-in model\n";
/// The text the default script ends its turn with.
pub const DEFAULT_REPLY: &str = "done";
/// The reply to a request without tools (opencode's title generation).
pub const DEFAULT_UNTOOLED: &str = "Stand-in session";
/// The reply once the conversation is past the last step.
pub const DEFAULT_EXHAUSTED: &str = "(the stand-in script has no more steps)";

/// One model reply.
///
/// In JSON: `{"text": "done"}` or
/// `{"tool_call": {"name": "write", "arguments": {"filePath": "a.txt", "content": "hi"}}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// An assistant text; the turn ends (`finish_reason: "stop"`).
    Text(String),
    /// One tool call; opencode runs the tool and asks again (`finish_reason: "tool_calls"`).
    ToolCall(ToolCall),
}

impl Step {
    /// A text reply.
    pub fn text(text: impl Into<String>) -> Step {
        Step::Text(text.into())
    }

    /// A tool call with JSON arguments.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Step {
        Step::ToolCall(ToolCall {
            name: name.into(),
            arguments,
        })
    }

    /// opencode's `write` tool: write `content` to `file_path` (relative to the workspace, or
    /// absolute). The argument names are the ones opencode 1.18's `write` tool declares.
    pub fn write(file_path: impl Into<String>, content: impl Into<String>) -> Step {
        Step::tool_call(
            "write",
            serde_json::json!({ "filePath": file_path.into(), "content": content.into() }),
        )
    }
}

/// A scripted tool call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The tool's name as the request's `tools` list declares it (e.g. `write`, `bash`).
    pub name: String,
    /// The arguments. A JSON string is sent verbatim as the arguments text (so a test can send
    /// malformed arguments); any other value is sent serialised.
    pub arguments: Value,
}

impl ToolCall {
    /// The `function.arguments` text of the call.
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        }
    }
}

/// The replies of the stand-in, in conversation order (see the module docs).
///
/// In JSON either a bare array of steps or an object:
/// `{"steps": [...], "exhausted": {"text": "..."}, "untooled": "..."}` (the last two optional).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct Script {
    /// Step *n* answers a request whose conversation holds *n* assistant messages.
    pub steps: Vec<Step>,
    /// The reply once the conversation is past the last step.
    pub exhausted: Step,
    /// The text answering requests that offer no tools (opencode's title generation).
    pub untooled: String,
}

/// The object shape of a script (the bare-array shape is `Vec<Step>`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptObject {
    steps: Vec<Step>,
    #[serde(default)]
    exhausted: Option<Step>,
    #[serde(default)]
    untooled: Option<String>,
}

impl TryFrom<Value> for Script {
    type Error = serde_json::Error;

    /// Dispatches on the shape first, so a mistake is reported against the shape meant (an
    /// untagged enum would only say that no shape matched).
    fn try_from(json: Value) -> Result<Script, serde_json::Error> {
        if json.is_array() {
            return Ok(Script::new(serde_json::from_value(json)?));
        }
        let object: ScriptObject = serde_json::from_value(json)?;
        let mut script = Script::new(object.steps);
        if let Some(exhausted) = object.exhausted {
            script.exhausted = exhausted;
        }
        if let Some(untooled) = object.untooled {
            script.untooled = untooled;
        }
        Ok(script)
    }
}

impl Default for Script {
    /// Step 0 writes [`DEFAULT_CONTENT`] to [`DEFAULT_FILE`]; step 1 says [`DEFAULT_REPLY`].
    fn default() -> Script {
        Script::new(vec![
            Step::write(DEFAULT_FILE, DEFAULT_CONTENT),
            Step::text(DEFAULT_REPLY),
        ])
    }
}

/// Which reply a request gets, and why.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice<'a> {
    /// Step `index` of the script.
    Step { index: usize, step: &'a Step },
    /// The conversation is past the last step (it holds `index` assistant messages).
    Exhausted { index: usize, step: &'a Step },
    /// The request offers no tools: the untooled text.
    Untooled { text: &'a str },
}

impl Choice<'_> {
    /// The reply as a step.
    pub fn step(&self) -> Step {
        match self {
            Choice::Step { step, .. } | Choice::Exhausted { step, .. } => (*step).clone(),
            Choice::Untooled { text } => Step::text(*text),
        }
    }

    /// The script position the request was at (`None` for an untooled request).
    pub fn index(&self) -> Option<usize> {
        match self {
            Choice::Step { index, .. } | Choice::Exhausted { index, .. } => Some(*index),
            Choice::Untooled { .. } => None,
        }
    }
}

impl Script {
    /// A script of these steps with the default exhausted and untooled replies.
    pub fn new(steps: Vec<Step>) -> Script {
        Script {
            steps,
            exhausted: Step::text(DEFAULT_EXHAUSTED),
            untooled: DEFAULT_UNTOOLED.to_string(),
        }
    }

    /// Parses a script from JSON (see [`Script`] for the shapes).
    pub fn from_json(text: &str) -> Result<Script, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Parses a script from JSON, naming `origin` (a file, a flag, an env var) in the error.
    pub fn parse(text: &str, origin: &str) -> Result<Script, StandInError> {
        Script::from_json(text).map_err(|source| StandInError::ScriptParse {
            origin: origin.to_string(),
            source,
        })
    }

    /// Reads and parses a script file.
    pub fn from_file(path: &Path) -> Result<Script, StandInError> {
        let text = std::fs::read_to_string(path).map_err(|source| StandInError::ScriptRead {
            path: path.to_path_buf(),
            source,
        })?;
        Script::parse(&text, &path.display().to_string())
    }

    /// The reply for a chat-completions request body.
    pub fn choose(&self, request: &Value) -> Choice<'_> {
        let offers_tools = request
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| !tools.is_empty());
        if !offers_tools {
            return Choice::Untooled {
                text: &self.untooled,
            };
        }
        let index = assistant_messages(request);
        match self.steps.get(index) {
            Some(step) => Choice::Step { index, step },
            None => Choice::Exhausted {
                index,
                step: &self.exhausted,
            },
        }
    }
}

/// How many assistant messages (earlier model replies) a request's conversation holds.
pub fn assistant_messages(request: &Value) -> usize {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |messages| {
            messages
                .iter()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                .count()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(messages: Value) -> Value {
        json!({"model": "m", "messages": messages, "tools": [{"type": "function", "function": {"name": "write"}}]})
    }

    #[test]
    fn the_default_script_writes_then_says_done() {
        let script = Script::default();
        let first =
            request(json!([{"role": "system", "content": "s"}, {"role": "user", "content": "go"}]));
        assert_eq!(
            script.choose(&first).step(),
            Step::write(DEFAULT_FILE, DEFAULT_CONTENT)
        );
        let after_tool = request(json!([
            {"role": "system", "content": "s"},
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "write", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "Wrote file successfully."}
        ]));
        let choice = script.choose(&after_tool);
        assert_eq!(choice.index(), Some(1));
        assert_eq!(choice.step(), Step::text(DEFAULT_REPLY));
    }

    #[test]
    fn a_conversation_past_the_last_step_gets_the_exhausted_reply() {
        let script = Script::new(vec![Step::text("only")]);
        let second_prompt = request(json!([
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "only"},
            {"role": "user", "content": "two"}
        ]));
        let choice = script.choose(&second_prompt);
        assert!(matches!(choice, Choice::Exhausted { index: 1, .. }));
        assert_eq!(choice.step(), Step::text(DEFAULT_EXHAUSTED));
    }

    #[test]
    fn the_same_conversation_always_gets_the_same_step() {
        let script = Script::default();
        let first = request(json!([{"role": "user", "content": "go"}]));
        assert_eq!(script.choose(&first), script.choose(&first));
    }

    #[test]
    fn requests_without_tools_get_the_untooled_text_and_do_not_step() {
        let script = Script::default();
        for body in [
            json!({"messages": [{"role": "user", "content": "title this"}]}),
            json!({"messages": [], "tools": []}),
        ] {
            let choice = script.choose(&body);
            assert_eq!(choice.index(), None);
            assert_eq!(choice.step(), Step::text(DEFAULT_UNTOOLED));
        }
    }

    #[test]
    fn scripts_parse_from_both_json_shapes() {
        let bare = Script::from_json(
            r#"[{"tool_call": {"name": "write", "arguments": {"filePath": "a", "content": "b"}}}, {"text": "ok"}]"#,
        )
        .unwrap();
        assert_eq!(
            bare,
            Script::new(vec![Step::write("a", "b"), Step::text("ok")])
        );
        let full = Script::from_json(
            r#"{"steps": [{"text": "x"}], "exhausted": {"text": "end"}, "untooled": "T"}"#,
        )
        .unwrap();
        assert_eq!(full.steps, vec![Step::text("x")]);
        assert_eq!(full.exhausted, Step::text("end"));
        assert_eq!(full.untooled, "T");
        // What serialises parses back.
        let round = Script::from_json(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(round, full);
    }

    #[test]
    fn unknown_step_shapes_are_rejected() {
        assert!(Script::from_json(r#"[{"txt": "typo"}]"#).is_err());
        assert!(Script::from_json(r#"[{"tool_call": {"name": "w"}}]"#).is_err());
    }

    #[test]
    fn string_arguments_are_sent_verbatim() {
        let call = ToolCall {
            name: "write".into(),
            arguments: json!("{not json"),
        };
        assert_eq!(call.arguments_text(), "{not json");
        let call = ToolCall {
            name: "write".into(),
            arguments: json!({"filePath": "a"}),
        };
        assert_eq!(call.arguments_text(), r#"{"filePath":"a"}"#);
    }
}
