//! The word lists names are made of: invented, but shaped like the real thing.

pub(super) const FIRST_NAMES: &[&str] = &[
    "Mira", "Jonas", "Lena", "Kito", "Anouk", "Tomas", "Yuki", "Dario", "Selin", "Ravi", "Noor",
    "Elif", "Matteo", "Ines", "Sasha", "Kai", "Femi", "Lior", "Nadia", "Oskar", "Priya", "Rune",
    "Talia", "Wren", "Bastian", "Chloe", "Dmitri", "Esme", "Felix", "Greta", "Hugo", "Ilse",
    "Jules", "Kaspar", "Linnea", "Marek", "Nils", "Odile", "Pablo", "Quinn", "Rosa", "Soren",
    "Tove", "Umar", "Vera", "Wim", "Ximena", "Yannick", "Zora", "Amara", "Benoit", "Carmen",
    "Desmond", "Emeka", "Frida", "Gideon", "Hana", "Ivo", "Joost", "Keziah", "Laszlo", "Maren",
    "Nico", "Orla", "Paolo", "Rafael", "Saoirse", "Teo", "Ulla", "Viggo",
];

pub(super) const SURNAMES: &[&str] = &[
    "Kessler", "Lindqvist", "Moreau", "Okafor", "Varga", "Hale", "Castell", "Nakamura",
    "Brandt", "Ferreira", "Solberg", "Adeyemi", "Reyes", "Vos", "Marchetti", "Halvorsen",
    "Duarte", "Kowal", "Ilic", "Achterberg", "Bianchi", "Crane", "Dahlberg", "Everett", "Falk",
    "Gallo", "Hartmann", "Ibarra", "Jansen", "Kovacs", "Laurent", "Mendes", "Novak", "Oyelaran",
    "Petrov", "Quaid", "Rasmussen", "Santos", "Takahashi", "Ulrich", "Vidal", "Weiss", "Yilmaz",
    "Zeller", "Arden", "Bakker", "Carvalho", "Delacroix", "Engel", "Fontaine",
];

pub(super) const ALIAS_ADJECTIVES: &[&str] = &[
    "Velvet", "Hollow", "Night", "Silent", "Golden", "Northern", "Paper", "Electric", "Lunar",
    "Crystal", "Analog", "Distant", "Quiet", "Iron", "Glass", "Neon", "Violet", "Static",
    "Hidden", "Second", "Deep", "Modular", "Infinite", "Cold", "Warm", "Urban", "Solar",
    "Tidal",
];

pub(super) const ALIAS_NOUNS: &[&str] = &[
    "Circuit", "Coast", "Palace", "Orchestra", "Tapes", "Echo", "Garden", "Motion", "Society",
    "Signal", "Harbour", "Machines", "Theory", "Frequency", "Collective", "Youth", "Assembly",
    "District", "Atlas", "Unit", "Season", "Method", "Archive", "Club", "Kids", "Department",
];

pub(super) const SINGLE_NAMES: &[&str] = &[
    "Oberon", "Kaleida", "Vessel", "Marlowe", "Tessaract", "Ylva", "Kormak", "Aurelian",
    "Nimbus", "Solvent", "Orbitone", "Hexer", "Lumen", "Mosaic", "Parallel", "Quartzite",
    "Rivage", "Sundial", "Tarkus", "Umbra", "Vantablack", "Wavelength", "Xylo", "Zenith",
    "Amberlight", "Bloomfield", "Cinder", "Driftwood", "Ellipse", "Fathom",
];

pub(super) const NATIONALITIES: &[&str] = &[
    "Berlin-based", "London", "Dutch", "Belgian", "French", "Swedish", "Norwegian", "Danish",
    "Italian", "Spanish", "Portuguese", "Nigerian", "South African", "Japanese", "Australian",
    "Canadian", "Brazilian", "Polish", "Hungarian", "Irish", "Scottish", "Icelandic",
];

pub(super) const TITLE_WORDS: &[&str] = &[
    "Glue", "Ratio", "Afterglow", "Undertow", "Parallax", "Mirage", "Helix", "Solace", "Sodium",
    "Kinetic", "Horizon", "Tides", "Monsoon", "Gravity", "Lanterns", "Sirens", "Voltage",
    "Driftwood", "Cascade", "Ember", "Nocturne", "Halcyon", "Prism", "Ritual", "Vapour",
    "Satellite", "Canopy", "Reverie", "Labyrinth", "Oracle", "Pulse", "Quasar", "Riverside",
    "Saltwater", "Thunder", "Utopia", "Vertigo", "Wildfire", "Zephyr", "Aurora", "Bloom",
    "Cobalt", "Daybreak", "Equinox", "Fever", "Glasshouse", "Heatwave", "Icarus", "Jupiter",
    "Kaleidoscope", "Lullaby", "Meridian", "Nebula", "Outlines", "Polaris", "Rapture",
    "Spectrum", "Tangerine", "Uplift", "Velocity", "Whispers", "Momentum", "Signals", "Shadows",
    "Motion", "Memories", "Dreams", "Paradise", "Fragments", "Currents", "Strobe", "Tempest",
    "Orbit",
];

pub(super) const TITLE_ADJECTIVES: &[&str] = &[
    "Midnight", "Low", "Endless", "Broken", "Golden", "Violet", "Hidden", "Second", "Distant",
    "Electric", "Slow", "Lost", "Silver", "Wild", "Open", "Falling", "Rising", "Cold", "Deep",
    "Burning", "Silent", "Sacred", "Liquid", "Crystal", "Weightless", "Northern", "Restless",
];

pub(super) const TITLE_PHRASES: &[&str] = &[
    "Don't Look Back", "Into The Night", "Feel It Now", "Hold Me Closer", "We Were Young",
    "Lose Control", "All Night Long", "Say My Name", "Take Me Higher", "Never Let Go",
    "Where The Light Falls", "Keep On Moving", "Tell Me Why", "Out Of Time", "Call It Love",
    "Only You", "Nowhere To Hide", "Back To Life", "Let It Go", "Right Here Right Now",
    "Until The Morning", "Closer To You", "Stay With Me", "Something In The Air",
];

pub(super) const ALBUM_NOUNS: &[&str] = &[
    "Years", "Cities", "Sessions", "Rooms", "Stories", "Waves", "Chapters", "Landscapes",
    "Signals", "Seasons", "Hours", "Horizons",
];

pub(super) const ISRC_COUNTRIES: &[&str] = &[
    "GB", "US", "DE", "NL", "FR", "BE", "SE", "AU", "IT", "ES",
];
