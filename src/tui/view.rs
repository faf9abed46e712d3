//! Pure rendering: the [`Model`] and the run's facts → one ratatui frame. No I/O, no clock (the
//! uptime is passed in), so layouts are tested against snapshots with ratatui's test backend.
//!
//! Threat addressed: secrets on screen. Tokens and the opencode password are drawn masked unless
//! the person revealed them ([`Model::reveal`]); log lines arrive already redacted. The state of
//! a service reads without colour (a symbol and a word), for `NO_COLOR` terminals and screen
//! readers alike.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::input::BINDINGS;
use super::state::{Focus, Modal, Model, ServiceFilter, format_latency, format_uptime};
use crate::logs::Level;
use crate::supervisor::{Instance, ServiceState, ServiceStatus};

/// Facts of the run known before the services start.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub workspace: String,
    pub run_id: String,
    /// `none`, or the sandbox backend (`docker`, `container`).
    pub sandbox: String,
    /// The sandbox container's name, in sandbox mode.
    pub container: Option<String>,
    pub version: &'static str,
    /// Colour on (off with `--no-color` / `NO_COLOR`).
    pub color: bool,
    /// Services the run will start, in order, with whether each is optional.
    pub expected: Vec<(&'static str, bool)>,
}

/// How to connect, known once the run is ready.
#[derive(Debug, Clone)]
pub struct ConnectInfo {
    pub openwork_url: String,
    pub connect_url: String,
    pub opencode_url: String,
    /// The attach command with the opencode credentials in it.
    pub attach_raw: String,
    /// The same with the credentials masked.
    pub attach_masked: String,
    /// (label, raw value) of each token.
    pub tokens: Vec<(&'static str, String)>,
    /// Each service's port.
    pub ports: Vec<(&'static str, u16)>,
}

const MASK: &str = "••••••••";

/// Draws the whole dashboard.
pub fn render(
    frame: &mut Frame<'_>,
    model: &Model,
    run: &RunInfo,
    connect: Option<&ConnectInfo>,
    uptime: Duration,
) {
    let area = frame.area();
    let palette = Palette { color: run.color };
    let approvals_h = if model.approvals.is_empty() {
        0
    } else {
        2 + model.approvals.len().min(3) as u16 * 2
    };
    let services_h = 3 + run.expected.len().max(model.services.services.len()) as u16;
    let connect_h = match connect {
        Some(c) => {
            let lan = u16::from(c.connect_url != c.openwork_url);
            // Revealed tokens take a line each (they do not fit side by side).
            let tokens = if model.reveal {
                c.tokens.len() as u16
            } else {
                1
            };
            2 + 1 + lan + 1 + tokens + 1
        }
        None => 3,
    };
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, run, uptime, &palette);
    if model.logs_full {
        draw_logs(frame, body, model, &palette);
    } else {
        let [services, connect_area, approvals, logs] = Layout::vertical([
            Constraint::Length(services_h),
            Constraint::Length(connect_h),
            Constraint::Length(approvals_h),
            Constraint::Min(3),
        ])
        .areas(body);
        draw_services(frame, services, model, run, connect, &palette);
        draw_connect(frame, connect_area, model, connect);
        if approvals_h > 0 {
            draw_approvals(frame, approvals, model, &palette);
        }
        draw_logs(frame, logs, model, &palette);
    }
    draw_footer(frame, footer, model, &palette);
    match &model.modal {
        Some(Modal::Help) => draw_help(frame, area),
        Some(Modal::ConfirmQuit { reason }) => draw_confirm(frame, area, reason),
        Some(Modal::Search { .. }) | None => {}
    }
}

struct Palette {
    color: bool,
}

impl Palette {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, run: &RunInfo, uptime: Duration, p: &Palette) {
    let sandbox = match &run.container {
        Some(c) => format!("{} ({c})", run.sandbox),
        None => run.sandbox.clone(),
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("openwork ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("v{}", run.version)),
            Span::raw("  workspace "),
            Span::styled(run.workspace.clone(), p.fg(Color::Cyan)),
        ]),
        Line::from(format!(
            "run {}  sandbox {}  up {}",
            run.run_id,
            sandbox,
            format_uptime(uptime)
        )),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

/// Symbol and words of a state; readable without colour.
fn state_text(status: Option<&ServiceStatus>, optional: bool) -> (&'static str, String, Color) {
    let Some(s) = status else {
        return ("·", "waiting".into(), Color::DarkGray);
    };
    match &s.state {
        ServiceState::Starting => ("◌", "starting".into(), Color::Yellow),
        ServiceState::Healthy => ("●", "healthy".into(), Color::Green),
        ServiceState::Unhealthy => ("✗", "unhealthy".into(), Color::Red),
        ServiceState::Restarting { attempt, max } => {
            ("↻", format!("restarting {attempt}/{max}"), Color::Yellow)
        }
        ServiceState::Stopped => ("■", "stopped".into(), Color::DarkGray),
        ServiceState::GaveUp {
            required: false, ..
        } => ("○", "optional, down".into(), Color::DarkGray),
        ServiceState::GaveUp { .. } if optional => ("○", "optional, down".into(), Color::DarkGray),
        ServiceState::GaveUp { .. } => ("✗", "gave up".into(), Color::Red),
    }
}

fn draw_services(
    frame: &mut Frame<'_>,
    area: Rect,
    model: &Model,
    run: &RunInfo,
    connect: Option<&ConnectInfo>,
    p: &Palette,
) {
    let focused = model.focus == Focus::Services;
    let block = panel("Services", focused);
    let mut names: Vec<(&'static str, bool)> = run.expected.clone();
    for s in &model.services.services {
        if !names.iter().any(|(n, _)| *n == s.name) {
            names.push((s.name, false));
        }
    }
    let mut lines = vec![Line::styled(
        format!(
            "  {:<17}{:<19}{:<16}{:<7}{:>8}  {}",
            "SERVICE", "STATE", "PID/CONTAINER", "PORT", "RESTARTS", "HEALTH"
        ),
        Style::default().add_modifier(Modifier::DIM),
    )];
    for (i, (name, optional)) in names.iter().enumerate() {
        let status = model.services.services.iter().find(|s| s.name == *name);
        let (symbol, words, colour) = state_text(status, *optional);
        let instance = match status.and_then(|s| s.instance.as_ref()) {
            Some(Instance::Process { pid }) => format!("pid {pid}"),
            Some(Instance::Container { id, .. }) => {
                format!("ctr {}", id.chars().take(12).collect::<String>())
            }
            None => "-".into(),
        };
        let port = connect
            .and_then(|c| c.ports.iter().find(|(n, _)| n == name))
            .map_or("-".to_string(), |(_, p)| p.to_string());
        let restarts = status.map_or(0, |s| s.restarts);
        let latency = status
            .and_then(|s| s.last_latency)
            .map_or("-".to_string(), format_latency);
        let selected = focused && model.selected_service_name() == Some(*name)
            || focused && status.is_none() && i == model.selected_service;
        let marker = if selected { "›" } else { " " };
        let row_style = if selected {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        };
        lines.push(
            Line::from(vec![
                Span::raw(format!("{marker} {name:<17}")),
                Span::styled(format!("{symbol} {words:<17}"), p.fg(colour)),
                Span::raw(format!("{instance:<16}{port:<7}{restarts:>8}  {latency}")),
            ])
            .style(row_style),
        );
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_connect(frame: &mut Frame<'_>, area: Rect, model: &Model, connect: Option<&ConnectInfo>) {
    let title = if model.reveal {
        "Connect (secrets shown: v hides)"
    } else {
        "Connect (secrets masked: v shows, c copies attach)"
    };
    let block = panel(title, false);
    let Some(c) = connect else {
        frame.render_widget(
            Paragraph::new("waiting for the services to be ready…").block(block),
            area,
        );
        return;
    };
    let label = |l: &str| {
        Span::styled(
            format!("{l:<13}"),
            Style::default().add_modifier(Modifier::DIM),
        )
    };
    let attach = if model.reveal {
        &c.attach_raw
    } else {
        &c.attach_masked
    };
    let mut lines = vec![Line::from(vec![
        label("OpenWork URL"),
        Span::raw(c.openwork_url.clone()),
    ])];
    if c.connect_url != c.openwork_url {
        lines.push(Line::from(vec![
            label("Connect URL"),
            Span::raw(c.connect_url.clone()),
        ]));
    } else {
        lines[0].push_span(Span::raw("  (also the connect URL)"));
    }
    lines.push(Line::from(vec![
        label("OpenCode URL"),
        Span::raw(c.opencode_url.clone()),
    ]));
    if model.reveal {
        for (name, value) in &c.tokens {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{name} token "),
                    Style::default().add_modifier(Modifier::DIM),
                ),
                Span::raw(value.clone()),
            ]));
        }
    } else {
        let mut masked = vec![label("Tokens")];
        for (name, _) in &c.tokens {
            masked.push(Span::raw(format!("{name} {MASK}  ")));
        }
        lines.push(Line::from(masked));
    }
    lines.push(Line::from(vec![label("Attach"), Span::raw(attach.clone())]));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_approvals(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let focused = model.focus == Focus::Approvals;
    let title = format!(
        "Approvals pending: {} (a allow, x deny{})",
        model.approvals.len(),
        if focused { "" } else { ", tab selects" }
    );
    let block = panel(&title, true).border_style(p.fg(Color::Yellow));
    let mut lines = Vec::new();
    for (i, a) in model.approvals.iter().take(3).enumerate() {
        let selected = i == model.selected_approval;
        let marker = if selected { "›" } else { " " };
        let style = if selected && focused {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        };
        lines.push(
            Line::from(format!("{marker} {} by {}: {}", a.action, a.who, a.summary)).style(style),
        );
        lines.push(Line::from(format!("    paths: {}", a.paths.join(", "))));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_logs(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    let service = match model.service_filter {
        ServiceFilter::All => "all",
        ServiceFilter::Only(s) => s,
    };
    let mut title = format!(
        "Logs  service: {service} · level: {} · follow: {}",
        model.level_filter.label(),
        if model.follow { "on" } else { "off" }
    );
    if !model.search.is_empty() {
        title.push_str(&format!(" · search: {}", model.search));
    }
    let block = panel(&title, model.focus == Focus::Logs);
    let height = area.height.saturating_sub(2) as usize;
    let visible = model.visible_logs();
    let end = if model.follow {
        visible.len()
    } else {
        visible.len().saturating_sub(model.scroll)
    };
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = visible[start..end]
        .iter()
        .map(|l| {
            let (lvl, colour) = match l.level {
                Level::Info => ("", Color::Reset),
                Level::Debug => ("DEBUG ", Color::DarkGray),
                Level::Warn => ("WARN ", Color::Yellow),
                Level::Error => ("ERROR ", Color::Red),
            };
            Line::from(vec![
                Span::styled(
                    format!("[{}] ", short(l.service)),
                    p.fg(service_colour(l.service)),
                ),
                Span::styled(lvl, p.fg(colour)),
                Span::raw(l.text.clone()),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, model: &Model, p: &Palette) {
    if let Some(Modal::Search { draft }) = &model.modal {
        frame.render_widget(
            Paragraph::new(format!("search: {draft}▏  (enter apply, esc cancel)")),
            area,
        );
        return;
    }
    if let Some((text, _)) = &model.toast {
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!(" {text} "),
                p.fg(Color::Green).add_modifier(Modifier::REVERSED),
            )),
            area,
        );
        return;
    }
    // The most useful keys first; as many as fit, `? help` always.
    let keys = [
        "q quit",
        "d detach",
        "tab focus",
        "r restart",
        "a/x approve",
        "f follow",
        "s/e filter",
        "/ search",
        "v reveal",
        "c copy",
    ];
    let width = area.width as usize;
    let mut text = String::new();
    for k in keys {
        if text.chars().count() + k.chars().count() + 2 + "? help".len() > width {
            break;
        }
        text.push_str(k);
        text.push_str("  ");
    }
    text.push_str("? help");
    frame.render_widget(
        Paragraph::new(Line::styled(
            text,
            Style::default().add_modifier(Modifier::DIM),
        )),
        area,
    );
}

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let width = 56.min(area.width);
    let height = (BINDINGS.len() as u16 + 3).min(area.height);
    let rect = centered(area, width, height);
    let mut lines: Vec<Line> = BINDINGS
        .iter()
        .map(|(k, what)| Line::from(format!(" {k:<8} {what}")))
        .collect();
    lines.push(Line::from(" any key closes this help"));
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(panel("Keys", true)), rect);
}

fn draw_confirm(frame: &mut Frame<'_>, area: Rect, reason: &str) {
    let rect = centered(area, 60.min(area.width), 5.min(area.height));
    let lines = vec![
        Line::from(format!(" {reason}.")),
        Line::from(" Stop every service and quit?"),
        Line::from(" y: stop and quit    n / esc: keep running"),
    ];
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(panel("Quit?", true)), rect);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    Rect {
        x: area.x + area.width.saturating_sub(width) / 2,
        y: area.y + area.height.saturating_sub(height) / 2,
        width,
        height,
    }
}

fn panel(title: &str, focused: bool) -> Block<'static> {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} "));
    if focused {
        block.title_style(Style::default().add_modifier(Modifier::BOLD))
    } else {
        block
    }
}

/// Short service tags for the log view.
fn short(service: &str) -> &str {
    match service {
        "openwork-orchestrator" => "openwork",
        "openwork-server" => "server",
        "opencode-router" => "router",
        other => other,
    }
}

fn service_colour(service: &str) -> Color {
    match service {
        "opencode" => Color::Cyan,
        "openwork-server" => Color::Green,
        "opencode-router" => Color::Magenta,
        _ => Color::DarkGray,
    }
}
