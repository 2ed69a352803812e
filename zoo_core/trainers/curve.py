"""The training curve: every loss in ``log.jsonl`` against the step, one panel per loss, as a PNG
drawn with Pillow (no plotting library)."""

from __future__ import annotations

import json
import math
from pathlib import Path

LINE = (31, 119, 180)
NOT_LOSSES = {"step", "lr", "samples_per_s", "elapsed_s"}


def read_log(log_path: str | Path) -> list[dict]:
    entries = []
    for line in Path(log_path).read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int):
            entries.append(entry)
    return entries


def plot_losses(log_path: str | Path, png_path: str | Path, *, width: int = 640, panel_height: int = 150,
                max_panels: int = 6, x_label: str = "step") -> Path | None:
    """Draw the losses of ``log_path`` into ``png_path``; ``None`` when there is nothing to draw. The x axis is
    the entries' ``step``, labelled ``x_label`` (a caller that logs another count there names it)."""
    from PIL import Image, ImageDraw, ImageFont

    entries = read_log(log_path)
    names = [k for k in entries[0] if k not in NOT_LOSSES] if entries else []
    names = [k for k in names if any(isinstance(e.get(k), (int, float)) for e in entries)][:max_panels]
    if not names:
        return None
    image = Image.new("RGB", (width, panel_height * len(names)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 70, 12, 18, 22
    steps = [e["step"] for e in entries]
    x0, x1 = min(steps), max(steps)
    for row, name in enumerate(names):
        points = [(e["step"], float(e[name])) for e in entries
                  if isinstance(e.get(name), (int, float)) and math.isfinite(float(e[name]))]
        y_offset = row * panel_height
        box = (left, y_offset + top, width - right, y_offset + panel_height - bottom)
        draw.rectangle(box, outline=(120, 120, 120))
        draw.text((left, y_offset + 3), name, fill="black", font=font)
        if not points:
            continue
        low, high = min(v for _, v in points), max(v for _, v in points)
        span_y, span_x = (high - low) or 1.0, (x1 - x0) or 1

        def xy(step: int, value: float) -> tuple[float, float]:
            return (box[0] + (box[2] - box[0]) * (step - x0) / span_x,
                    box[3] - (box[3] - box[1]) * (value - low) / span_y)

        draw.text((4, box[1]), f"{high:.4g}", fill="black", font=font)
        draw.text((4, box[3] - 10), f"{low:.4g}", fill="black", font=font)
        draw.text((box[0], box[3] + 4), f"{x_label} {x0}", fill="black", font=font)
        draw.text((box[2] - 60, box[3] + 4), f"{x_label} {x1}", fill="black", font=font)
        if len(points) == 1:
            x, y = xy(*points[0])
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=LINE)
        else:
            draw.line([xy(s, v) for s, v in points], fill=LINE, width=2)
    image.save(png_path)
    return Path(png_path)
