//! Runbooks as the seed writes them in Markdown: sections, bash blocks, commands.
//!
//! Only what the rules need is read: each runbook (`## Runbook: …`, or `# Runbook: …`
//! in a file of its own), its alert header, which part a command is in (investigation,
//! resolution, verification) and under which scenario, each command of a ```` ```bash ````
//! block with its line, its `\`-continued lines joined, its here-document, and the
//! comments written above it since the previous command (where a text says "get
//! approval first").

/// Where in a runbook a command stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Symptoms,
    Investigation,
    Resolution,
    Verification,
    Other,
}

/// One command of a bash block.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// 1-based line of the command's first line.
    pub line: usize,
    /// The command, continuation lines joined with a space.
    pub text: String,
    /// The here-document's body and the line it starts on, if the command has one.
    pub heredoc: Option<(usize, String)>,
    /// The comments between the previous command (or the block's start) and this one.
    pub comments: Vec<String>,
    pub part: Part,
    /// The `**Scenario …**` heading the command is under, if any.
    pub scenario: Option<String>,
}

impl Command {
    /// The command and its here-document: what a rule searches.
    pub fn full_text(&self) -> String {
        match &self.heredoc {
            Some((_, body)) => format!("{}\n{}", self.text, body),
            None => self.text.clone(),
        }
    }

    /// `(method, port, path)` of each `curl` to `localhost:PORT/path` (or
    /// `127.0.0.1`) in the command; the path without its query.
    pub fn local_requests(&self) -> Vec<(String, u16, String)> {
        let text = self.text.replace(['\'', '"'], " ");
        let w: Vec<&str> = text.split_whitespace().collect();
        if !w.contains(&"curl") {
            return Vec::new();
        }
        let method = w
            .iter()
            .position(|x| *x == "-X" || *x == "--request")
            .and_then(|i| w.get(i + 1))
            .map_or("GET", |m| m);
        w.iter()
            .filter_map(|word| {
                let rest = word
                    .strip_prefix("http://localhost:")
                    .or_else(|| word.strip_prefix("http://127.0.0.1:"))?;
                let (port, path) = rest.split_once('/').unwrap_or((rest, ""));
                let port: u16 = port.parse().ok()?;
                let path = format!("/{}", path.split('?').next().unwrap_or(""));
                Some((method.to_owned(), port, path))
            })
            .collect()
    }

    /// The SQL a `psql` command runs: its here-document, or its `-c` argument.
    pub fn sql(&self) -> Option<String> {
        if !self.text.split_whitespace().any(|w| w == "psql") {
            return None;
        }
        if let Some((_, body)) = &self.heredoc {
            return Some(body.clone());
        }
        let after = self.text.split_once(" -c ")?.1.trim();
        let quote = after.chars().next()?;
        if quote == '"' || quote == '\'' {
            let inner = &after[1..];
            return Some(inner[..inner.find(quote)?].to_owned());
        }
        Some(after.to_owned())
    }

    /// `(verb, services)` of a `docker compose <verb> … <service>…` command; options
    /// (`--tail=50`, `-f`) and what follows a pipe are left out.
    pub fn compose(&self) -> Option<(String, Vec<String>)> {
        let command = self.text.split('|').next()?.trim();
        let rest = command
            .strip_prefix("docker compose ")
            .or_else(|| command.strip_prefix("docker-compose "))?;
        // Options and the files of `-f FILE` are not operands.
        let mut operands = Vec::new();
        let mut words = rest.split_whitespace();
        while let Some(word) = words.next() {
            if word == "-f" || word == "--file" || word == "-p" || word == "--project-name" {
                words.next();
            } else if !word.starts_with('-') {
                operands.push(word);
            }
        }
        let mut words = operands.into_iter();
        let verb = words.next()?.to_owned();
        let services: Vec<String> = match verb.as_str() {
            // exec's first operand is the service; the rest is its command.
            "exec" => words.next().map(str::to_owned).into_iter().collect(),
            _ => words.map(str::to_owned).collect(),
        };
        Some((verb, services))
    }
}

/// One runbook of a document.
#[derive(Clone, Debug, PartialEq)]
pub struct Runbook {
    pub title: String,
    pub line: usize,
    pub alert: Option<String>,
    pub has_verification: bool,
    pub commands: Vec<Command>,
}

/// The runbooks of a Markdown document, in order.
pub fn parse(text: &str) -> Vec<Runbook> {
    let mut runbooks: Vec<Runbook> = Vec::new();
    let mut part = Part::Other;
    let mut scenario: Option<String> = None;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(title) = runbook_heading(trimmed) {
            runbooks.push(Runbook {
                title: title.to_owned(),
                line: number,
                alert: None,
                has_verification: false,
                commands: Vec::new(),
            });
            part = Part::Other;
            scenario = None;
            continue;
        }
        let Some(runbook) = runbooks.last_mut() else {
            continue;
        };
        if trimmed.starts_with('#') && !trimmed.starts_with("#!") {
            part = part_of_heading(trimmed);
            scenario = None;
            if part == Part::Verification {
                runbook.has_verification = true;
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("**Alert Name:**") {
            runbook.alert = Some(rest.trim().trim_matches('`').to_owned());
            continue;
        }
        if trimmed.starts_with("**Scenario") {
            scenario = Some(trimmed.trim_matches('*').to_owned());
            continue;
        }
        if trimmed == "```bash" || trimmed == "```sh" || trimmed == "```shell" {
            let block = read_block(&mut lines);
            runbook
                .commands
                .extend(commands_of(block, part, scenario.as_deref()));
        }
    }
    runbooks
}

fn runbook_heading(line: &str) -> Option<&str> {
    let title = line
        .strip_prefix("## Runbook:")
        .or_else(|| line.strip_prefix("# Runbook:"))?;
    Some(title.trim())
}

fn part_of_heading(line: &str) -> Part {
    let heading = line.trim_start_matches('#').trim().to_ascii_lowercase();
    if heading.starts_with("symptom") {
        Part::Symptoms
    } else if heading.starts_with("investigat") {
        Part::Investigation
    } else if heading.starts_with("resol") {
        Part::Resolution
    } else if heading.starts_with("verif") {
        Part::Verification
    } else {
        Part::Other
    }
}

/// The lines of a fenced block, up to its closing fence.
fn read_block<'a>(lines: &mut impl Iterator<Item = (usize, &'a str)>) -> Vec<(usize, &'a str)> {
    let mut block = Vec::new();
    for (number, line) in lines.by_ref() {
        if line.trim() == "```" {
            break;
        }
        block.push((number, line));
    }
    block
}

fn commands_of(block: Vec<(usize, &str)>, part: Part, scenario: Option<&str>) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut comments = Vec::new();
    let mut lines = block.into_iter();
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            comments.push(comment.trim().to_owned());
            continue;
        }
        let mut text = trimmed.to_owned();
        while text.ends_with('\\') {
            text.pop();
            match lines.next() {
                Some((_, next)) => {
                    text = format!("{} {}", text.trim_end(), next.trim());
                }
                None => break,
            }
        }
        let heredoc = heredoc_marker(&text).map(|marker| {
            let mut body = Vec::new();
            let mut start = number + 1;
            let mut first = true;
            for (n, l) in lines.by_ref() {
                if first {
                    start = n;
                    first = false;
                }
                if l.trim() == marker {
                    break;
                }
                body.push(l);
            }
            (start, body.join("\n"))
        });
        commands.push(Command {
            line: number,
            text,
            heredoc,
            comments: std::mem::take(&mut comments),
            part,
            scenario: scenario.map(str::to_owned),
        });
    }
    commands
}

/// `EOF` of `<< EOF`, `<<EOF`, `<< 'EOF'` or `<<-"EOF"`.
fn heredoc_marker(command: &str) -> Option<String> {
    let (_, rest) = command.split_once("<<")?;
    let rest = rest.trim_start_matches('-').trim_start();
    let marker: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!marker.is_empty()).then_some(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
## Runbook: Example

**Alert Name:** `ExampleAlert`

### Investigation Steps

```bash
# 1. Look
curl http://localhost:8020/health | \\
  jq .status

psql -h localhost << EOF
SELECT 1;
EOF
```

### Resolution Steps

**Scenario A: Broken**

```bash
# 1. Fix it (get approval first)
docker compose restart api
```
";

    #[test]
    fn commands_carry_their_line_part_scenario_and_comments() {
        let runbooks = parse(TEXT);
        assert_eq!(runbooks.len(), 1);
        let runbook = &runbooks[0];
        assert_eq!(runbook.alert.as_deref(), Some("ExampleAlert"));
        assert!(!runbook.has_verification);
        let [curl, psql, restart] = &runbook.commands[..] else {
            panic!("{:#?}", runbook.commands);
        };
        assert_eq!(curl.line, 9);
        assert_eq!(curl.text, "curl http://localhost:8020/health | jq .status");
        assert_eq!(curl.comments, ["1. Look"]);
        assert_eq!(curl.part, Part::Investigation);
        assert_eq!(psql.heredoc, Some((13, "SELECT 1;".to_owned())));
        assert!(psql.comments.is_empty());
        assert_eq!(restart.part, Part::Resolution);
        assert_eq!(restart.scenario.as_deref(), Some("Scenario A: Broken"));
        assert_eq!(restart.comments, ["1. Fix it (get approval first)"]);
    }

    #[test]
    fn heredoc_markers_in_their_spellings() {
        for command in [
            "psql << EOF",
            "psql <<EOF",
            "cat > f << 'EOF'",
            "x <<-\"EOF\"",
        ] {
            assert_eq!(heredoc_marker(command).as_deref(), Some("EOF"), "{command}");
        }
        assert_eq!(heredoc_marker("echo hi"), None);
    }

    #[test]
    fn what_a_command_asks_of_the_stack() {
        let runbook = &parse(TEXT)[0];
        let curl = &runbook.commands[0];
        assert_eq!(
            curl.local_requests(),
            vec![("GET".to_owned(), 8020, "/health".to_owned())]
        );
        assert_eq!(curl.sql(), None);
        assert_eq!(
            runbook.commands[1].sql().as_deref().map(str::trim),
            Some("SELECT 1;")
        );
        assert_eq!(
            runbook.commands[2].compose(),
            Some(("restart".to_owned(), vec!["api".to_owned()]))
        );
        let command = |text: &str| Command {
            line: 1,
            text: text.to_owned(),
            heredoc: None,
            comments: Vec::new(),
            part: Part::Resolution,
            scenario: None,
        };
        assert_eq!(
            command("docker compose logs api-gateway-internal --tail=100 | grep -i error")
                .compose(),
            Some(("logs".to_owned(), vec!["api-gateway-internal".to_owned()]))
        );
        assert_eq!(
            command("docker compose -f docker-compose.yml -f workers.yml up -d").compose(),
            Some(("up".to_owned(), vec![]))
        );
        assert_eq!(
            command("docker compose exec redis redis-cli FLUSHDB").compose(),
            Some(("exec".to_owned(), vec!["redis".to_owned()]))
        );
        assert_eq!(
            command("psql -h localhost -p 5433 -c \"SELECT COUNT(*) FROM tracks;\"").sql(),
            Some("SELECT COUNT(*) FROM tracks;".to_owned())
        );
    }
}
