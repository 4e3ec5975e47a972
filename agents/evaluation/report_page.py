"""The listening page's HTML: one static, self-contained ``index.html`` from plain data.

:mod:`agents.evaluation.report` plays the takes and writes the audio and pictures; this module
only lays them out (:func:`page_html`): the results table, the references, the curves and, per
primer, the real continuation and every agent's take side by side, each an ``<audio controls>``
player over its piano roll. The page loads nothing but the files beside it (no script, no font,
no stylesheet from elsewhere), so it opens from disk or from any static host.

>>> page = Page("t", "runs/x", results=[ResultRow("ppo", "aligned", "0.5", "-0.1", "-", 1)])
>>> "<td>ppo</td>" in page_html(page)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import NamedTuple

__all__ = ["ResultRow", "Media", "PrimerMedia", "Page", "page_html"]


class ResultRow(NamedTuple):
    """One row of the results table: an agent (under a shaping) and its final scores, as text."""

    agent: str
    shaping: str
    headline: str
    """Held-out headline: mean ± std over seeds (SE)."""
    song: str
    """Raw song term, mean ± std over seeds."""
    velocity: str
    """Velocity headline (the takes' dynamics), mean ± std over seeds."""
    seeds: int


class Media(NamedTuple):
    """One player on the page: a label, its audio and its piano roll (file names beside the page).

    ``audio`` and ``image`` are ``None`` when there is nothing to play (``note`` says why).
    """

    label: str
    audio: str | None
    image: str | None
    note: str = ""


class PrimerMedia(NamedTuple):
    """One primer: its title and its players, the real continuation first."""

    title: str
    players: Sequence[Media]


class Page(NamedTuple):
    """Everything the page shows, as plain text and file names."""

    title: str
    source: str
    """The folder the page was made from."""
    intro: Sequence[str] = ()
    """Paragraphs under the title (what was run, the split, the command)."""
    results: Sequence[ResultRow] = ()
    references: Sequence[tuple[str, str]] = ()
    """``(player, headline)`` rows: the ceiling and the floors."""
    curves: str | None = None
    """File name of the curves' picture, or ``None``."""
    curves_note: str = ""
    primers: Sequence[PrimerMedia] = ()
    primers_note: str = ""
    """How the primers were chosen and the takes played."""
    footer: Sequence[str] = ()
    """Closing paragraphs (the data's attribution)."""


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
.takes { display: grid; grid-template-columns: repeat(auto-fill, minmax(22em, 1fr));
         gap: 1em; }
figure { margin: 0; padding: 0.6em; border: 1px solid #ddd; border-radius: 6px; }
figure.real { border-color: #2a7; background: #f3fbf6; }
figcaption { font-weight: 600; margin-bottom: 0.4em; }
audio, figure img { width: 100%; }
img.curves { max-width: 100%; }
.note, .meta { color: #666; font-size: 0.9em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _results(rows: Sequence[ResultRow]) -> list[str]:
    head = ("<tr><th>agent</th><th>shaping</th><th>headline: mean ± std over seeds (SE)</th>"
            "<th>song term (raw)</th><th>velocity headline</th><th>seeds</th></tr>")  # fmt: skip
    out = ['<table class="results">', f"<thead>{head}</thead>", "<tbody>"]
    for r in rows:
        cells = (r.agent, r.shaping, r.headline, r.song, r.velocity, str(r.seeds))
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return [*out, "</tbody>", "</table>"]


def _player(media: Media, real: bool) -> list[str]:
    kind = "take real" if real else "take"
    out = [f'<figure class="{kind}">', f"<figcaption>{escape(media.label)}</figcaption>"]
    if media.audio is not None:
        out.append(f'<audio controls preload="auto" src="{escape(media.audio)}"></audio>')
    if media.image is not None:
        out.append(f'<img src="{escape(media.image)}" alt="piano roll: {escape(media.label)}">')
    if media.note:
        out.append(f'<p class="note">{escape(media.note)}</p>')
    return [*out, "</figure>"]


def page_html(page: Page) -> str:
    """The page as one HTML document (UTF-8 text; every value escaped).

    Args:
        page: what to show; file names are relative to the page's folder.

    Returns:
        the document.
    """
    out = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no request for /favicon.ico
        f"<title>{escape(page.title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
        f"<h1>{escape(page.title)}</h1>",
        f'<p class="meta">Made by <code>drum-env report</code> from <code>{escape(page.source)}'
        "</code>.</p>",
    ]  # fmt: skip
    out += [f"<p>{escape(p)}</p>" for p in page.intro]
    if page.results:
        out += ["<h2>Results</h2>", *_results(page.results)]
    if page.references:
        out += ['<h3>References</h3>', '<table class="references">',
                "<thead><tr><th>player</th><th>headline</th></tr></thead>", "<tbody>"]  # fmt: skip
        out += [f"<tr><td>{escape(name)}</td><td>{escape(value)}</td></tr>"
                for name, value in page.references]  # fmt: skip
        out += ["</tbody>", "</table>"]
    out.append("<h2>Curves</h2>")
    if page.curves is not None:
        out.append(f'<img class="curves" src="{escape(page.curves)}" alt="learning curves">')
    if page.curves_note:
        out.append(f'<p class="note">{escape(page.curves_note)}</p>')
    out.append("<h2>Listen</h2>")
    if page.primers_note:
        out.append(f"<p>{escape(page.primers_note)}</p>")
    for i, primer in enumerate(page.primers):
        out += [f'<section class="primer" id="primer-{i + 1}">',
                f"<h3>{escape(primer.title)}</h3>", '<div class="takes">']  # fmt: skip
        for j, media in enumerate(primer.players):
            out += _player(media, real=j == 0)
        out += ["</div>", "</section>"]
    out += [f'<p class="note">{escape(p)}</p>' for p in page.footer]
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
