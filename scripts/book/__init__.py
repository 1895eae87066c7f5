"""What the book needs: diagrams, the browser, example content, book checks."""
