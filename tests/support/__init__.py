"""What tests share that is not a fixture: tiny configs, data drawers, native service starters, a
headless browser. Test modules import from here, never from each other."""
