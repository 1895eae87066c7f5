"""A course's life: registry states, the dispatcher, archives, mail, status."""
