"""Read a PDF with pypdf, write its first page as a new PDF and the text of every page."""

import sys

from pypdf import PdfReader, PdfWriter

reader = PdfReader(sys.argv[1])
writer = PdfWriter()
writer.add_page(reader.pages[0])
with open("/outputs/first-page.pdf", "wb") as handle:
    writer.write(handle)
text = "\n".join(page.extract_text() or "" for page in reader.pages)
with open("/outputs/text.txt", "w", encoding="utf-8") as handle:
    handle.write(text)
print(f"{len(reader.pages)} pages; kept page 1")
