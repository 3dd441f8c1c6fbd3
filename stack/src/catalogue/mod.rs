//! A deterministic catalogue of electronic-music tracks: the world the providers know.
//!
//! The provider stand-ins answer from it (Spotify, MusicBrainz, Last.fm, the scraped
//! tracklist sites) and the seed data is drawn from it, so a seeded row agrees with
//! what the providers would return for the same track. Everything follows from the
//! seed: track `i` of a catalogue depends only on the seed and `i` (and on the tracks
//! before it, to keep artist–title pairs unique), never on how long the catalogue is.
//!
//! Names are invented but sound real; facts have realistic shapes (22-character base62
//! Spotify ids, ISRCs like `GBCFB1700260`, MusicBrainz UUIDs, 118–140 BPM for most
//! tracks). Some tracks are unknown to a provider: about 8 % are not on Spotify, 5 %
//! are unknown to MusicBrainz and 3 % to Last.fm. Popularity follows the track's rank
//! (rank 0 is the most popular), and [`Catalogue::popular`] draws tracks with a
//! Zipf-like law, so popular tracks recur in scraped tracklists as they do in DJ sets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};

use rand_chacha::ChaCha8Rng;
use words::*;

// Data, formatted by hand: one entry per line would make it ten times longer.
#[rustfmt::skip]
mod words;

/// Bumped whenever generation changes, so cached templates built from an older
/// catalogue are not reused.
pub const CATALOGUE_VERSION: u32 = 1;

/// The catalogue length when nothing asks for more: more tracks than the default seed
/// loads, so the scrapers keep finding tracks the database has not seen.
pub const DEFAULT_LEN: usize = 2500;

/// How many artists every catalogue draws from (fixed, so track `i` does not depend on
/// the catalogue's length).
const ARTISTS: usize = 400;

/// One track and everything the providers know about it.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogueTrack {
    /// 0 is the most popular track.
    pub rank: usize,
    pub artist: String,
    pub title: String,
    pub album: String,
    /// `YYYY-MM-DD`.
    pub release_date: String,
    pub track_number: u32,
    pub album_tracks: u32,
    pub spotify_id: String,
    pub spotify_artist_id: String,
    pub spotify_album_id: String,
    pub isrc: String,
    pub musicbrainz_id: String,
    pub musicbrainz_artist_id: String,
    pub musicbrainz_release_id: String,
    pub artist_disambiguation: String,
    /// Spotify's `tempo`, three decimals.
    pub bpm: f64,
    /// Pitch class, 0 = C … 11 = B (Spotify's `key`).
    pub key: u8,
    /// 1 major, 0 minor (Spotify's `mode`).
    pub mode: u8,
    pub duration_ms: u32,
    pub genre: &'static str,
    /// Last.fm top tags and MusicBrainz tags, the genre first.
    pub tags: Vec<&'static str>,
    /// Spotify popularity, 0–100.
    pub popularity: u8,
    pub listeners: u64,
    pub playcount: u64,
    pub audio: AudioFeatures,
    pub on_spotify: bool,
    pub on_musicbrainz: bool,
    pub on_lastfm: bool,
}

impl CatalogueTrack {
    /// The key as the `tracks.key` column holds it, e.g. `"F#m"`.
    pub fn key_name(&self) -> String {
        key_name(self.key, self.mode)
    }
}

/// Spotify's audio features other than tempo, key, mode and duration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AudioFeatures {
    pub danceability: f64,
    pub energy: f64,
    pub valence: f64,
    pub acousticness: f64,
    pub instrumentalness: f64,
    pub liveness: f64,
    pub speechiness: f64,
    pub loudness: f64,
}

/// A Spotify key and mode as the twin's enrichment writes `tracks.key`: the pitch class
/// with `#` for sharps and `m` for minor (`"C"`, `"A#m"`), so seeded rows and enriched
/// rows read alike.
pub fn key_name(key: u8, mode: u8) -> String {
    const PITCHES: [&str; 12] = [
        "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
    ];
    let pitch = PITCHES[usize::from(key % 12)];
    if mode == 1 {
        pitch.to_owned()
    } else {
        format!("{pitch}m")
    }
}

/// The catalogue: tracks by rank, with lookups the providers need.
#[derive(Debug)]
pub struct Catalogue {
    seed: u64,
    tracks: Vec<CatalogueTrack>,
    by_name: HashMap<(String, String), usize>,
    by_spotify_id: HashMap<String, usize>,
    /// Cumulative Zipf weights by rank, ending at 1.
    popularity_cdf: Vec<f64>,
}

impl Catalogue {
    /// The catalogue of `len` tracks for `seed`.
    pub fn generate(seed: u64, len: usize) -> Self {
        let artists: Vec<Artist> = (0..ARTISTS).map(|i| Artist::generate(seed, i)).collect();
        let mut tracks = Vec::with_capacity(len);
        let mut by_name = HashMap::with_capacity(len);
        let mut by_spotify_id = HashMap::with_capacity(len);
        for rank in 0..len {
            // Retry with the next sub-seed until the artist–title pair is new.
            let track = (0u64..)
                .map(|attempt| generate_track(seed, rank, attempt, &artists))
                .find(|t| !by_name.contains_key(&normalized(&t.artist, &t.title)))
                .expect("an unbounded range always finds a fresh name");
            by_name.insert(normalized(&track.artist, &track.title), rank);
            by_spotify_id.insert(track.spotify_id.clone(), rank);
            tracks.push(track);
        }
        let weights: Vec<f64> = (0..len).map(|r| 1.0 / (r as f64 + 1.0)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let popularity_cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Self {
            seed,
            tracks,
            by_name,
            by_spotify_id,
            popularity_cdf,
        }
    }

    /// The catalogue for `seed` and `len`, generated once per process and then shared:
    /// test suites start many stacks with the same seed, and generation is not free
    /// (~0.15 s in a debug build).
    pub fn shared(seed: u64, len: usize) -> Arc<Catalogue> {
        static CACHE: Mutex<Vec<Arc<Catalogue>>> = Mutex::new(Vec::new());
        // A handful of recent catalogues; a process rarely uses more than one or two seeds.
        const KEEP: usize = 4;
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.iter().find(|c| c.seed == seed && c.len() == len) {
            return found.clone();
        }
        let catalogue = Arc::new(Catalogue::generate(seed, len));
        if cache.len() >= KEEP {
            cache.remove(0);
        }
        cache.push(catalogue.clone());
        catalogue
    }

    /// The length of catalogue a stack with `seed_tracks` tracks of history uses.
    pub fn len_for(seed_tracks: usize) -> usize {
        DEFAULT_LEN.max(seed_tracks + seed_tracks / 4)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    pub fn tracks(&self) -> &[CatalogueTrack] {
        &self.tracks
    }

    pub fn get(&self, rank: usize) -> Option<&CatalogueTrack> {
        self.tracks.get(rank)
    }

    /// The track with this artist and title, ignoring case and extra spaces.
    pub fn find(&self, artist: &str, title: &str) -> Option<&CatalogueTrack> {
        self.by_name
            .get(&normalized(artist, title))
            .map(|&i| &self.tracks[i])
    }

    pub fn by_spotify_id(&self, id: &str) -> Option<&CatalogueTrack> {
        self.by_spotify_id.get(id).map(|&i| &self.tracks[i])
    }

    /// A track drawn by popularity (weight 1/(rank+1)) with `u` uniform in [0, 1).
    pub fn popular(&self, u: f64) -> &CatalogueTrack {
        let i = self.popularity_cdf.partition_point(|&c| c <= u);
        &self.tracks[i.min(self.tracks.len() - 1)]
    }

    /// The distinct artist names, in order of first appearance (DJ names for tracklists).
    pub fn artist_names(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.tracks
            .iter()
            .map(|t| t.artist.as_str())
            .filter(|a| seen.insert(*a))
            .collect()
    }
}

fn normalized(artist: &str, title: &str) -> (String, String) {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    (norm(artist), norm(title))
}

/// A 64-bit mixing function (SplitMix64's finaliser): derives independent seeds.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A generator for one purpose, derived from the root seed and a salt.
pub(crate) fn rng_for(seed: u64, salt: &str, index: u64) -> ChaCha8Rng {
    let salt = salt.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    });
    ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(salt ^ splitmix64(index))))
}

struct Artist {
    name: String,
    spotify_id: String,
    musicbrainz_id: String,
    disambiguation: String,
    home_genre: usize,
}

impl Artist {
    fn generate(seed: u64, index: usize) -> Self {
        let mut rng = rng_for(seed, "artist", index as u64);
        let name = match rng.random_range(0..100) {
            0..45 => format!(
                "{} {}",
                pick(&mut rng, FIRST_NAMES),
                pick(&mut rng, SURNAMES)
            ),
            45..70 => format!(
                "{} {}",
                pick(&mut rng, ALIAS_ADJECTIVES),
                pick(&mut rng, ALIAS_NOUNS)
            ),
            70..85 => pick(&mut rng, SINGLE_NAMES).to_string(),
            85..92 => format!("DJ {}", pick(&mut rng, FIRST_NAMES)),
            _ => format!(
                "{} & {}",
                pick(&mut rng, FIRST_NAMES),
                pick(&mut rng, FIRST_NAMES)
            ),
        };
        // Distinguish the rare artists that share a generated name, as MusicBrainz does.
        let disambiguation = format!(
            "{} {} producer",
            pick(&mut rng, NATIONALITIES),
            GENRES[index % GENRES.len()].name
        );
        Self {
            spotify_id: base62(&mut rng, 22),
            musicbrainz_id: uuid(&mut rng),
            disambiguation,
            home_genre: rng.random_range(0..GENRES.len()),
            name,
        }
    }
}

struct Genre {
    name: &'static str,
    bpm: (f64, f64),
    /// Tags after the genre itself (Last.fm top tags, MusicBrainz tags).
    tags: &'static [&'static str],
}

const GENRES: &[Genre] = &[
    Genre {
        name: "house",
        bpm: (120.0, 126.0),
        tags: &["electronic", "dance"],
    },
    Genre {
        name: "deep house",
        bpm: (118.0, 124.0),
        tags: &["house", "electronic"],
    },
    Genre {
        name: "tech house",
        bpm: (124.0, 128.0),
        tags: &["house", "techno"],
    },
    Genre {
        name: "techno",
        bpm: (128.0, 138.0),
        tags: &["electronic", "industrial"],
    },
    Genre {
        name: "melodic techno",
        bpm: (120.0, 126.0),
        tags: &["techno", "electronic"],
    },
    Genre {
        name: "progressive house",
        bpm: (120.0, 128.0),
        tags: &["house", "progressive"],
    },
    Genre {
        name: "breakbeat",
        bpm: (125.0, 135.0),
        tags: &["electronic", "breaks"],
    },
    Genre {
        name: "electro",
        bpm: (125.0, 132.0),
        tags: &["electronic", "synth"],
    },
    Genre {
        name: "minimal",
        bpm: (122.0, 128.0),
        tags: &["techno", "microhouse"],
    },
    Genre {
        name: "afro house",
        bpm: (118.0, 124.0),
        tags: &["house", "afro"],
    },
    Genre {
        name: "trance",
        bpm: (134.0, 140.0),
        tags: &["electronic", "uplifting"],
    },
    Genre {
        name: "drum and bass",
        bpm: (170.0, 176.0),
        tags: &["electronic", "jungle"],
    },
    Genre {
        name: "downtempo",
        bpm: (92.0, 110.0),
        tags: &["chillout", "electronic"],
    },
];

fn generate_track(seed: u64, rank: usize, attempt: u64, artists: &[Artist]) -> CatalogueTrack {
    let mut rng = rng_for(seed, "track", (rank as u64) << 8 | attempt.min(255));
    if attempt > 255 {
        // Practically unreachable; keeps the stream distinct all the same.
        for _ in 0..attempt {
            rng.random::<u64>();
        }
    }
    // Popular artists have more tracks.
    let artist_index = ((rng.random::<f64>().powf(1.6)) * artists.len() as f64) as usize;
    let artist = &artists[artist_index.min(artists.len() - 1)];
    let genre_index = if rng.random_bool(0.85) {
        artist.home_genre
    } else {
        // Strays land mostly in the 118–140 BPM genres; drum and bass and downtempo stay rare.
        rng.random_range(0..GENRES.len() - 2)
    };
    let genre = &GENRES[genre_index];

    let base_title = match rng.random_range(0..100) {
        0..40 => pick(&mut rng, TITLE_WORDS).to_string(),
        40..72 => format!(
            "{} {}",
            pick(&mut rng, TITLE_ADJECTIVES),
            pick(&mut rng, TITLE_WORDS)
        ),
        72..82 => format!("The {}", pick(&mut rng, TITLE_WORDS)),
        _ => pick(&mut rng, TITLE_PHRASES).to_string(),
    };
    let (title, extended) = match rng.random_range(0..100) {
        0..6 => (format!("{base_title} (Extended Mix)"), true),
        6..13 => {
            let remixer = &artists[rng.random_range(0..artists.len())].name;
            (format!("{base_title} ({remixer} Remix)"), true)
        }
        13..16 => (format!("{base_title} (Dub)"), true),
        _ => (base_title, false),
    };

    let year = rng.random_range(2010..=2025);
    let release_date = format!(
        "{year}-{:02}-{:02}",
        rng.random_range(1..=12),
        rng.random_range(1..=28)
    );
    let album_tracks = *pick(&mut rng, &[1u32, 2, 3, 4, 8, 10, 12]);
    let album = if album_tracks <= 4 {
        format!("{} EP", title_root(&title))
    } else {
        format!(
            "{} {}",
            pick(&mut rng, TITLE_ADJECTIVES),
            pick(&mut rng, ALBUM_NOUNS)
        )
    };
    let isrc = format!(
        "{}{}{:02}{:05}",
        pick(&mut rng, ISRC_COUNTRIES),
        alnum_upper(&mut rng, 3),
        year % 100,
        rng.random_range(0..100_000)
    );
    let tempo = rng.random_range(genre.bpm.0..genre.bpm.1) + rng.random_range(-0.02..0.02);
    let duration_ms = if extended {
        rng.random_range(330_000..480_000)
    } else {
        rng.random_range(190_000..420_000)
    };
    let popularity =
        (82.0 - 14.0 * (rank as f64 + 1.0).log10() + rng.random_range(-6.0..6.0)).clamp(1.0, 100.0);
    let listeners = 10f64.powf(2.4 + popularity / 20.0) * rng.random_range(0.7..1.4);
    let mut tags = vec![genre.name];
    tags.extend(genre.tags.iter().copied());
    let audio = AudioFeatures {
        danceability: round3(rng.random_range(0.55..0.92)),
        energy: round3(rng.random_range(0.45..0.95)),
        valence: round3(rng.random_range(0.05..0.75)),
        acousticness: round5(rng.random_range(0.0001..0.12)),
        instrumentalness: round3(rng.random_range(0.35..0.95)),
        liveness: round4(rng.random_range(0.04..0.35)),
        speechiness: round4(rng.random_range(0.03..0.12)),
        loudness: round3(rng.random_range(-12.0..-4.5)),
    };
    CatalogueTrack {
        rank,
        artist: artist.name.clone(),
        title,
        album,
        release_date,
        track_number: rng.random_range(1..=album_tracks),
        album_tracks,
        spotify_id: base62(&mut rng, 22),
        spotify_artist_id: artist.spotify_id.clone(),
        spotify_album_id: base62(&mut rng, 22),
        isrc,
        musicbrainz_id: uuid(&mut rng),
        musicbrainz_artist_id: artist.musicbrainz_id.clone(),
        musicbrainz_release_id: uuid(&mut rng),
        artist_disambiguation: artist.disambiguation.clone(),
        bpm: round3(tempo),
        key: rng.random_range(0..12),
        mode: u8::from(rng.random_bool(0.45)),
        duration_ms,
        genre: genre.name,
        tags,
        popularity: popularity.round() as u8,
        listeners: listeners.round() as u64,
        playcount: (listeners * rng.random_range(4.0..12.0)).round() as u64,
        audio,
        on_spotify: !rng.random_bool(0.08),
        on_musicbrainz: !rng.random_bool(0.05),
        on_lastfm: !rng.random_bool(0.03),
    }
}

/// The title without its mix suffix.
fn title_root(title: &str) -> &str {
    title.split(" (").next().unwrap_or(title)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn base62(rng: &mut ChaCha8Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn alnum_upper(rng: &mut ChaCha8Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A version-4 UUID, as MusicBrainz ids are.
pub(crate) fn uuid(rng: &mut ChaCha8Rng) -> String {
    let mut bytes: [u8; 16] = rng.random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn round5(x: f64) -> f64 {
    (x * 100_000.0).round() / 100_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_catalogue_and_another_seed_another() {
        let a = Catalogue::generate(42, 500);
        let b = Catalogue::generate(42, 500);
        let c = Catalogue::generate(43, 500);
        assert_eq!(a.tracks(), b.tracks());
        assert_ne!(a.tracks()[0], c.tracks()[0]);
    }

    #[test]
    fn a_track_does_not_depend_on_the_catalogue_length() {
        let short = Catalogue::generate(7, 300);
        let long = Catalogue::generate(7, 2500);
        assert_eq!(short.tracks(), &long.tracks()[..300]);
    }

    #[test]
    fn facts_have_the_shapes_providers_use() {
        let catalogue = Catalogue::generate(42, DEFAULT_LEN);
        let tracks = catalogue.tracks();
        for t in tracks {
            assert_eq!(t.spotify_id.len(), 22);
            assert!(t.spotify_id.chars().all(|c| c.is_ascii_alphanumeric()));
            assert_eq!(t.isrc.len(), 12, "{}", t.isrc);
            assert_eq!(t.musicbrainz_id.len(), 36);
            assert_eq!(&t.musicbrainz_id[14..15], "4");
            assert!(t.key < 12 && t.mode < 2);
            assert!((1..=100).contains(&t.popularity));
        }
        let share = |f: fn(&CatalogueTrack) -> bool| {
            tracks.iter().filter(|t| f(t)).count() as f64 / tracks.len() as f64
        };
        let mostly_118_to_140 = share(|t| (118.0..=140.5).contains(&t.bpm));
        assert!(mostly_118_to_140 > 0.8, "{mostly_118_to_140}");
        let not_on_spotify = share(|t| !t.on_spotify);
        assert!((0.05..0.11).contains(&not_on_spotify), "{not_on_spotify}");
        let unknown_to_mb = share(|t| !t.on_musicbrainz);
        assert!((0.03..0.08).contains(&unknown_to_mb), "{unknown_to_mb}");
    }

    #[test]
    fn lookups_ignore_case_and_spacing() {
        let catalogue = Catalogue::generate(42, 100);
        let t = &catalogue.tracks()[17];
        let found = catalogue
            .find(&t.artist.to_uppercase(), &format!("  {}  ", t.title))
            .unwrap();
        assert_eq!(found.rank, 17);
        assert_eq!(catalogue.by_spotify_id(&t.spotify_id).unwrap().rank, 17);
        assert!(catalogue.find("Nobody", "Nothing").is_none());
    }

    #[test]
    fn popular_tracks_are_drawn_far_more_often() {
        let catalogue = Catalogue::generate(42, DEFAULT_LEN);
        let mut rng = rng_for(42, "test", 0);
        let draws: Vec<usize> = (0..10_000)
            .map(|_| catalogue.popular(rng.random()).rank)
            .collect();
        let top10 = draws.iter().filter(|&&r| r < 10).count();
        let bottom_half = draws.iter().filter(|&&r| r >= DEFAULT_LEN / 2).count();
        assert!(top10 > 2_000, "top 10 drawn {top10} times of 10 000");
        assert!(bottom_half < 1_500, "bottom half drawn {bottom_half} times");
    }

    #[test]
    fn keys_read_as_text() {
        assert_eq!(key_name(0, 1), "C");
        assert_eq!(key_name(6, 0), "F#m");
    }
}
