"""From weekly tables to text: numbers formatted once, templates rendered with escaping."""
