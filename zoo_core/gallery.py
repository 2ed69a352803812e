"""The ``index.html`` that ``zoo demo`` writes next to its images: an offline gallery.

One card per model (its sample grid or turntable, description, catalog metrics and the command
that measured each), then the models that were skipped and why. Plain HTML with inline CSS and
relative image paths: it opens from disk, with no network, in any browser.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Mapping

INDEX = "index.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; background: #fafafa; }
h1 { margin-bottom: 0.2rem; }
.models { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1.5rem; }
.model { background: white; border: 1px solid #ddd; border-radius: 8px; padding: 1rem; }
.model img { width: 100%; image-rendering: pixelated; border-radius: 4px; background: #000; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; margin-top: 0.5rem; }
td, th { border-top: 1px solid #eee; padding: 0.25rem; text-align: left; vertical-align: top; }
code { font-size: 0.75rem; word-break: break-all; }
.skipped li { margin-bottom: 0.3rem; }
"""


def write_gallery(out_dir: str | os.PathLike, shown: Mapping[str, tuple[Path, Any]],
                  skipped: Mapping[str, str]) -> Path:
    """Write ``out_dir/index.html``. ``shown``: name -> (image path, catalog entry); ``skipped``:
    name -> why. Image paths are written relative to ``out_dir``."""
    from . import __version__

    out_dir = Path(out_dir)
    esc = html.escape
    parts = [
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        "<title>zoo demo</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
        "<h1>zoo demo</h1>",
        f"<p>{len(shown)} model(s) sampled by <code>zoo demo</code> (zoo {esc(__version__)}); "
        f"{len(skipped)} skipped.</p>",
        '<div class="models">',
    ]
    for name, (image, entry) in shown.items():
        source = os.path.relpath(Path(image).resolve(), out_dir.resolve())
        what = "turntable" if str(image).endswith(".gif") else "samples"
        parts += [
            f'<section class="model" id="{esc(name)}">',
            f"<h2>{esc(name)}</h2>",
            f'<img src="{esc(source)}" alt="{esc(what)} of {esc(name)}">',
            f"<p>{esc(entry.description or entry.family)}</p>",
            f"<p>family <code>{esc(entry.family)}</code>, plugin <code>{esc(entry.plugin)}</code>"
            + (f", license <code>{esc(entry.license)}</code>" if entry.license else "") + "</p>",
        ]
        if entry.metrics:
            parts.append("<table><tr><th>metric</th><th>value</th><th>split</th><th>command</th></tr>")
            for metric in entry.metrics:
                parts.append(
                    f"<tr><td>{esc(metric.name)}</td><td>{metric.value:.6g}</td><td>{esc(metric.split or '')}</td>"
                    f"<td><code>{esc(metric.command)}</code></td></tr>"
                )
            parts.append("</table>")
        parts.append("</section>")
    parts.append("</div>")
    if skipped:
        parts.append('<h2>Skipped</h2><ul class="skipped">')
        parts += [f"<li><b>{esc(name)}</b>: {esc(reason)}</li>" for name, reason in skipped.items()]
        parts.append("</ul>")
    parts += ["</body>", "</html>", ""]
    index = out_dir / INDEX
    index.write_text("\n".join(parts), encoding="utf-8")
    return index
