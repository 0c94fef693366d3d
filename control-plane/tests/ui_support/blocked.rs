//! For the Blocked-requests tests: seeding telemetry through the store's
//! real ingestion path, and reading the page (its HTML over HTTP, or its
//! DOM in the browser).

use super::Page;
use anyhow::{Context, Result};
use fantoccini::{Client, Locator};
use serde_json::json;

/// Stores one telemetry batch through the store's real ingestion path:
/// `counts` are (service, origin, reason, would_block, count), all at `ts`.
pub async fn seed_blocked(
    store: &corsair_control_plane::store::Store,
    batch_id: &str,
    agent: &str,
    ts: chrono::DateTime<chrono::Utc>,
    counts: &[(&str, &str, &str, bool, i64)],
) -> Result<()> {
    use corsair_control_plane::store::blocked::{BlockedCount, IngestBatch};
    let batch = IngestBatch {
        batch_id: batch_id.to_string(),
        agent_id: agent.to_string(),
        ts,
        counts: counts
            .iter()
            .map(
                |(service, origin, reason, would_block, count)| BlockedCount {
                    service: service.to_string(),
                    origin: origin.to_string(),
                    method: "GET".to_string(),
                    reason: reason.to_string(),
                    would_block: *would_block,
                    count: *count,
                },
            )
            .collect(),
        dropped_events: 0,
        dropped_service: String::new(),
        uses: Vec::new(),
        ts_end: Default::default(),
    };
    store.ingest_blocked_batch(&batch).await?;
    Ok(())
}

/// The `<tr data-origin=…>` row of `origin` in the top-origins table.
pub fn row<'a>(page: &'a Page, origin: &str) -> Option<&'a str> {
    let at = page.body.find(&format!("<tr data-origin=\"{origin}\">"))?;
    let rest = &page.body[at..];
    Some(&rest[..rest.find("</tr>")?])
}

pub fn count_in(row: &str) -> Option<i64> {
    let marker = "<td class=\"count\">";
    let at = row.find(marker)? + marker.len();
    row[at..].split('<').next()?.parse().ok()
}

/// Undoes askama's HTML escaping of an attribute value.
pub fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

/// The `href` of the link whose attributes follow it with `after`.
pub fn href_before(body: &str, after: &str) -> Option<String> {
    let before = body.split(after).next()?;
    (before.len() < body.len())
        .then(|| before.rsplit("href=\"").next())
        .flatten()
        .and_then(|h| h.split('"').next())
        .map(unescape)
}

/// Sum of one `data-…` attribute over the chart's bars.
pub fn bar_sum(body: &str, attr: &str) -> i64 {
    let marker = format!("{attr}=\"");
    body.split("<g class=\"bar\" ")
        .skip(1)
        .filter_map(|bar| {
            let at = bar.find(&marker)? + marker.len();
            bar[at..].split('"').next()?.parse::<i64>().ok()
        })
        .sum()
}

/// `n` cross-origin `fetch()` calls from the current page to `url`; each
/// answer is "ok" or "blocked" (the browser refused to expose the response).
pub async fn fetch_from_page(c: &Client, url: &str, n: usize) -> Result<Vec<String>> {
    let out = c
        .execute(
            "const [url, n] = arguments;
             return Promise.all(Array.from({length: n}, () =>
               fetch(url).then(() => 'ok', () => 'blocked')));",
            vec![json!(url), json!(n)],
        )
        .await?;
    Ok(serde_json::from_value(out)?)
}

/// The count cell of `origin`'s row on the current page, if the row is there.
pub async fn shown_count(c: &Client, origin: &str) -> Option<i64> {
    let cell = c
        .find(Locator::Css(&format!(
            "tr[data-origin=\"{origin}\"] td.count"
        )))
        .await
        .ok()?;
    cell.text().await.ok()?.trim().parse().ok()
}

/// Sums `data-blocked` over the chart's bars and checks one is drawn.
pub async fn chart_total(c: &Client) -> Result<i64> {
    let mut total = 0;
    let bars = c.find_all(Locator::Css("#blocked-chart svg g.bar")).await?;
    for bar in &bars {
        total += bar
            .attr("data-blocked")
            .await?
            .context("data-blocked")?
            .parse::<i64>()?;
        let rect = bar.find(Locator::Css("rect.blocked")).await?;
        let h: f64 = rect.attr("height").await?.context("height")?.parse()?;
        anyhow::ensure!(h > 0.0, "a bar of height {h}");
    }
    Ok(total)
}
