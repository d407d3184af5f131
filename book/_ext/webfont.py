"""The site's Chinese web font: Noto Sans SC (SIL Open Font License), regular weight, from the npm package
``@fontsource/noto-sans-sc``, which cuts the font into about a hundred files by Unicode range. A page downloads only the
files whose range holds a character it shows, so the Chinese terms of an English chapter cost a few small files and a
Chinese chapter a few dozen, on a machine with no CJK font installed.

    python book/_ext/webfont.py PACKAGE_DIR OUT_DIR

copies the regular weight's WOFF2 files from the unpacked package into ``OUT_DIR/files`` and writes
``OUT_DIR/noto-sans-sc.css`` with one ``@font-face`` per range, under the family name ``dlbook CJK`` (the name the
site's font stack uses), leaving out the ranges of Latin text (the theme's fonts draw those).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

FAMILY = "dlbook CJK"
_FACE = re.compile(r"@font-face\s*\{(.*?)\}", re.S)
_FILE = re.compile(r"url\(\./files/([\w.-]+\.woff2)\)")
_RANGE = re.compile(r"unicode-range:\s*([^;]+);")


def _covers_ascii(unicode_range: str) -> bool:
    """Whether a CSS unicode-range covers the letter ``a`` (U+0061), i.e. is a Latin range."""
    for part in unicode_range.replace(" ", "").split(","):
        low, _, high = part.removeprefix("U+").partition("-")
        if "?" not in low and int(low, 16) <= 0x61 <= int(high or low, 16):
            return True
    return False


def font_faces(css: str) -> list[tuple[str, str]]:
    """(WOFF2 file name, unicode-range) of every regular-weight face of fontsource's ``400.css`` but the Latin ones."""
    faces = []
    for body in _FACE.findall(css):
        file, ranges = _FILE.search(body), _RANGE.search(body)
        if file and ranges and not _covers_ascii(ranges.group(1)):
            faces.append((file.group(1), ranges.group(1).strip()))
    return faces


def write_font(package: Path, out: Path) -> Path:
    faces = font_faces((package / "400.css").read_text(encoding="utf-8"))
    if not faces:
        raise SystemExit(f"no font faces found in {package / '400.css'}")
    (out / "files").mkdir(parents=True, exist_ok=True)
    rules = []
    for file, ranges in faces:
        shutil.copy(package / "files" / file, out / "files" / file)
        rules.append(f"@font-face {{ font-family: '{FAMILY}'; font-style: normal; font-weight: 400; "
                     f"font-display: swap; src: url(files/{file}) format('woff2'); unicode-range: {ranges}; }}")
    css = out / "noto-sans-sc.css"
    css.write_text("/* Noto Sans SC (SIL Open Font License 1.1), cut by Unicode range by @fontsource/noto-sans-sc */\n"
                   + "\n".join(rules) + "\n", encoding="utf-8")
    return css


if __name__ == "__main__":
    print(write_font(Path(sys.argv[1]), Path(sys.argv[2])))
