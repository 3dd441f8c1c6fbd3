//! The game day's live board, in the terminal (ratatui over crossterm, so it works
//! over ssh; `NO_COLOR` turns colour off).
//!
//! It draws one [`BoardState`]: the clock, every alert rule (pending, firing,
//! resolved), the signals of [`harness::signals`], the breakers, the last scraped
//! track, and the page until it is acknowledged. The game day's own terminal and
//! `drill gameday board` in another one draw the same state with the same code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harness::gameday::{Board, BoardState};
use harness::signals::Signal;
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};

/// What a key on the board asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardKey {
    Acknowledge,
    /// `q` or Ctrl-C: leave the board (the game day's own board: give up).
    Quit,
}

/// Colours, or none with `NO_COLOR`.
#[derive(Clone, Copy)]
pub(crate) struct Palette {
    color: bool,
}

impl Palette {
    fn from_env() -> Self {
        Self {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::default().fg(color)
        } else {
            Style::default()
        }
    }

    fn alert(self, state: &str) -> Style {
        let style = match state {
            "firing" => self.fg(Color::Red),
            "pending" => self.fg(Color::Yellow),
            "resolved" => self.fg(Color::Green),
            _ => self.fg(Color::DarkGray),
        };
        if state == "firing" {
            style.add_modifier(Modifier::BOLD)
        } else {
            style
        }
    }
}

/// Draws `board` until `stop` is set or a key asks to quit; keys go to `on_key`.
/// Blocking: run it on a thread of its own.
pub fn run(board: Board, stop: Arc<AtomicBool>, on_key: impl Fn(BoardKey)) -> std::io::Result<()> {
    let palette = Palette::from_env();
    let mut terminal = ratatui::try_init()?;
    let result = (|| {
        while !stop.load(Ordering::Relaxed) {
            let state = board.lock().unwrap_or_else(|p| p.into_inner()).clone();
            terminal.draw(|frame| render(frame, &state, palette))?;
            if event::poll(Duration::from_millis(250))?
                && let Event::Key(key) = event::read()?
                && key.kind == KeyEventKind::Press
            {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                match key.code {
                    KeyCode::Char('a') => on_key(BoardKey::Acknowledge),
                    KeyCode::Char('q') => {
                        on_key(BoardKey::Quit);
                        return Ok(());
                    }
                    _ if ctrl_c => {
                        on_key(BoardKey::Quit);
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })();
    ratatui::try_restore()?;
    result
}

/// One frame of the board.
pub(crate) fn render(frame: &mut Frame, state: &BoardState, palette: Palette) {
    let area = frame.area();
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(10),
        Constraint::Length(2),
    ])
    .areas(area);
    let clock = format!(
        "T+{:02}:{:02} modeled (scale {})",
        (state.minute / 60.0) as u64,
        (state.minute % 60.0) as u64,
        state.scale
    );
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(
                    state.title.clone(),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw("   "),
                Span::raw(clock),
            ]),
            Line::from(Span::styled(state.status.clone(), palette.fg(Color::Cyan))),
        ]),
        header,
    );
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(48), Constraint::Percentage(52)]).areas(body);
    render_alerts(frame, left, state, palette);
    render_signals(frame, right, state, palette);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("a", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(" acknowledge the page   "),
            Span::styled("q", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(" / Ctrl-C leave"),
        ])),
        footer,
    );
    if let Some(page) = &state.page
        && !state.acknowledged
        && !state.ended
    {
        let popup = centered(area, 64, 8);
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(Span::styled(
                    format!("{} {}", page.severity, page.alert),
                    palette.alert("firing"),
                )),
                Line::from(format!("threshold: {}", page.threshold)),
                Line::from(format!("runbook: {}", page.runbook_title)),
                Line::from(format!(
                    "fired at {} (T+{:.1} min)",
                    page.at.format("%H:%M:%S"),
                    page.minute
                )),
                Line::from("press a to acknowledge"),
            ])
            .wrap(Wrap { trim: true })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" PAGE ")
                    .border_style(palette.alert("firing")),
            ),
            popup,
        );
    }
}

fn render_alerts(frame: &mut Frame, area: Rect, state: &BoardState, palette: Palette) {
    let rows = state.alerts.iter().map(|alert| {
        let since = alert
            .since_minute
            .map_or_else(String::new, |m| format!("T+{m:.1}"));
        Row::new(vec![
            alert.alert.clone(),
            alert.severity.clone(),
            alert.state.clone(),
            since,
        ])
        .style(palette.alert(&alert.state))
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(26),
            Constraint::Length(3),
            Constraint::Length(9),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new(vec!["alert", "sev", "state", "since"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::default().borders(Borders::ALL).title(" alerts "));
    frame.render_widget(table, area);
}

fn render_signals(frame: &mut Frame, area: Rect, state: &BoardState, palette: Palette) {
    let mut rows: Vec<Row> = Vec::new();
    match &state.sample {
        Some(sample) => {
            for signal in Signal::ALL {
                let value = match (sample.values.get(&signal), sample.unreadable.get(&signal)) {
                    (Some(v), _) => signal.format(*v),
                    (None, Some(why)) if why.starts_with("too few") => "too few events".to_owned(),
                    (None, Some(_)) => "unreadable".to_owned(),
                    (None, None) => "—".to_owned(),
                };
                rows.push(Row::new(vec![signal.label().to_owned(), value]));
            }
            let breakers: Vec<String> = sample
                .breakers
                .iter()
                .map(|(provider, state)| format!("{provider} {state}"))
                .collect();
            let open = sample.breakers.values().any(|s| s != "CLOSED");
            rows.push(
                Row::new(vec!["breakers".to_owned(), breakers.join(", ")]).style(if open {
                    palette.fg(Color::Red)
                } else {
                    Style::default()
                }),
            );
            rows.push(Row::new(vec![
                "last scraped".to_owned(),
                sample.last_track.clone().unwrap_or_else(|| "—".into()),
            ]));
        }
        None => rows.push(Row::new(vec![
            "signals".to_owned(),
            "not sampled yet".to_owned(),
        ])),
    }
    let table = Table::new(rows, [Constraint::Length(26), Constraint::Min(20)])
        .block(Block::default().borders(Borders::ALL).title(" signals "));
    frame.render_widget(table, area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::gameday::{AlertLine, Page};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    #[test]
    fn the_board_shows_alerts_signals_and_the_page() {
        let mut sample = harness::signals::Sample::default();
        sample.values.insert(Signal::PoolUsage, 0.93);
        sample.breakers.insert("spotify".into(), "OPEN".into());
        let state = BoardState {
            title: "game day (blind), seed 7".into(),
            minute: 12.5,
            scale: 30.0,
            alerts: vec![AlertLine {
                alert: "DatabaseConnectionPoolHigh".into(),
                severity: "P1".into(),
                state: "firing".into(),
                since_minute: Some(4.0),
            }],
            sample: Some(sample),
            page: Some(Page {
                alert: "DatabaseConnectionPoolHigh".into(),
                severity: "P1".into(),
                threshold: "Pool usage > 80%".into(),
                runbook_title: "Database Connection Pool Exhaustion".into(),
                at: chrono::Utc::now(),
                minute: 4.0,
            }),
            acknowledged: false,
            status: "PAGED".into(),
            ended: false,
        };
        let screen = |state: &BoardState| {
            let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();
            terminal
                .draw(|frame| render(frame, state, Palette { color: false }))
                .unwrap();
            terminal
                .backend()
                .buffer()
                .content()
                .iter()
                .map(|cell| cell.symbol())
                .collect::<String>()
        };
        let paged = screen(&state);
        for expected in [
            "T+00:12",
            "DatabaseConnectionPoolHigh",
            " PAGE ",
            "Pool usage > 80%",
        ] {
            assert!(paged.contains(expected), "the board lacks {expected:?}");
        }
        let acknowledged = screen(&BoardState {
            acknowledged: true,
            ..state
        });
        assert!(
            !acknowledged.contains(" PAGE "),
            "an acknowledged page is put away"
        );
        for expected in ["93.0%", "spotify OPEN", "firing"] {
            assert!(
                acknowledged.contains(expected),
                "the board lacks {expected:?}"
            );
        }
    }
}
