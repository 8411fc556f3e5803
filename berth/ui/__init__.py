"""How berth prints: steps, findings and blocks, masked and cleaned of terminal control characters."""
