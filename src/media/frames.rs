//! The frames of an H.264 MP4, read back: the boxes parsed with `mp4`, each sample found from the
//! sample table with checked arithmetic and read only within the file, its length-prefixed NAL
//! units (AVCC) turned into start codes (Annex B) and decoded with OpenH264's decoder. A short,
//! damaged or hostile file gives a [`FrameError`], never a panic. The posters
//! ([`crate::media::preview`]), the tests and the local renderer's benchmark read videos through it.

use std::fs::File;
use std::io::{BufReader, Read as _, Seek as _, SeekFrom};
use std::ops::RangeInclusive;
use std::path::Path;

use openh264::formats::YUVSource as _;

/// Why frames cannot be read from a video. The messages are for a debug line or a test's failure.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("cannot open the video: {0}")]
    Open(std::io::Error),
    #[error("not a readable MP4 ({0})")]
    NotMp4(#[from] mp4::Error),
    #[error("the MP4 has no video track")]
    NoVideoTrack,
    #[error("the video is not H.264")]
    NotH264,
    #[error("the video has no parameter sets ({0})")]
    NoParameterSets(mp4::Error),
    #[error("the video track has no frames")]
    NoFrames,
    #[error("the video's sample table is damaged: {0}")]
    Table(&'static str),
    #[error("the video has no frame {0}")]
    NoSuchFrame(u32),
    #[error("frame {0} lies beyond the end of the file")]
    BeyondEnd(u32),
    #[error("frame {frame} cannot be read ({source})")]
    Read { frame: u32, source: std::io::Error },
    #[error("frame {0} is cut short")]
    CutShort(u32),
    #[error("no H.264 decoder ({0})")]
    NoDecoder(openh264::Error),
    #[error("frame {frame} cannot be decoded ({source})")]
    Decode { frame: u32, source: openh264::Error },
    #[error("the decoder gave a picture of the wrong shape")]
    BadPicture,
    #[error("no frame came out of the decoder")]
    NoOutput,
}

/// The video track of an MP4 file, open for decoding.
pub struct Mp4Video {
    file: File,
    len: u64,
    width: usize,
    height: usize,
    seconds: f64,
    frame_rate: f64,
    /// Each sample's (offset, size) in the file, in decoding order.
    samples: Vec<(u64, u32)>,
    /// The key frames (numbered from 1), when the track lists them; else every frame is one.
    sync: Option<Vec<u32>>,
    /// Bytes of each NAL unit's length prefix.
    prefix: usize,
    /// The parameter sets (SPS, PPS) as start-code units, sent before the first frame.
    head: Vec<u8>,
}

impl Mp4Video {
    /// Opens `path` and reads its first H.264 video track's description and sample table.
    pub fn open(path: &Path) -> Result<Mp4Video, FrameError> {
        let file = File::open(path).map_err(FrameError::Open)?;
        let len = file.metadata().map_err(FrameError::Open)?.len();
        let mp4 = mp4::Mp4Reader::read_header(BufReader::new(&file), len)?;
        let track = mp4
            .tracks()
            .values()
            .filter(|t| matches!(t.track_type(), Ok(mp4::TrackType::Video)))
            .min_by_key(|t| t.track_id())
            .ok_or(FrameError::NoVideoTrack)?;
        if !matches!(track.media_type(), Ok(mp4::MediaType::H264)) {
            return Err(FrameError::NotH264);
        }
        let stbl = &track.trak.mdia.minf.stbl;
        let avcc = &stbl.stsd.avc1.as_ref().ok_or(FrameError::NotH264)?.avcc;
        let mut head = Vec::new();
        for ps in [
            track.sequence_parameter_set(),
            track.picture_parameter_set(),
        ] {
            head.extend_from_slice(&[0, 0, 0, 1]);
            head.extend_from_slice(ps.map_err(FrameError::NoParameterSets)?);
        }
        let prefix = match avcc.length_size_minus_one & 3 {
            0 => 1,
            1 => 2,
            // 3 bytes is not allowed by the format.
            2 => return Err(FrameError::Table("NAL units with 3-byte lengths")),
            _ => 4,
        };
        let samples = sample_table(track, len)?;
        if samples.is_empty() {
            return Err(FrameError::NoFrames);
        }
        let mvhd = &mp4.moov.mvhd;
        let mdhd = &track.trak.mdia.mdhd;
        let seconds = ratio(mvhd.duration, mvhd.timescale);
        let track_seconds = ratio(mdhd.duration, mdhd.timescale);
        let frame_rate = if track_seconds > 0.0 {
            samples.len() as f64 / track_seconds
        } else {
            0.0
        };
        Ok(Mp4Video {
            width: usize::from(track.width()),
            height: usize::from(track.height()),
            seconds,
            frame_rate,
            sync: stbl.stss.as_ref().map(|s| s.entries.clone()),
            samples,
            prefix,
            head,
            len,
            file,
        })
    }

    /// The track's size as its header gives it.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// The movie's length in seconds (0 when its header gives no timescale).
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// Frames per second over the track's length (0 when it has none).
    pub fn frame_rate(&self) -> f64 {
        self.frame_rate
    }

    /// How many frames the track holds; they are numbered from 1.
    pub fn frame_count(&self) -> u32 {
        u32::try_from(self.samples.len()).unwrap_or(u32::MAX)
    }

    /// The last key frame at or before frame `n` (where decoding must start to show `n`).
    pub fn key_frame_before(&self, n: u32) -> u32 {
        match &self.sync {
            Some(keys) => keys.iter().copied().filter(|&k| k <= n).max().unwrap_or(1),
            None => n,
        }
    }

    /// Decodes frames `frames` (numbered from 1, in decoding order; start at a key frame for whole
    /// pictures) and hands each picture that comes out of the decoder to `each`, then the ones it
    /// still holds at the end (reordered streams).
    pub fn decode(
        &mut self,
        frames: RangeInclusive<u32>,
        mut each: impl FnMut(&Frame<'_>),
    ) -> Result<(), FrameError> {
        let (first, last) = (*frames.start(), *frames.end());
        if first == 0 || first > last {
            return Err(FrameError::NoSuchFrame(first));
        }
        if last > self.frame_count() {
            return Err(FrameError::NoSuchFrame(last));
        }
        let mut decoder = openh264::decoder::Decoder::new().map_err(FrameError::NoDecoder)?;
        let mut annexb = self.head.clone();
        let mut sample = Vec::new();
        for i in first..=last {
            self.read_sample(i, &mut sample)?;
            let mut data = &sample[..];
            while data.len() >= self.prefix {
                let (len, rest) = data.split_at(self.prefix);
                let n = len.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
                let nal = rest.get(..n).ok_or(FrameError::CutShort(i))?;
                annexb.extend_from_slice(&[0, 0, 0, 1]);
                annexb.extend_from_slice(nal);
                data = &rest[n..];
            }
            let decoded = decoder
                .decode(&annexb)
                .map_err(|source| FrameError::Decode { frame: i, source })?;
            if let Some(yuv) = decoded {
                each(&Frame::of(&yuv)?);
            }
            annexb.clear();
        }
        // A decoder that cannot give what it holds has nothing more to show.
        if let Ok(rest) = decoder.flush_remaining() {
            for yuv in &rest {
                each(&Frame::of(yuv)?);
            }
        }
        Ok(())
    }

    /// Reads sample `i` (from 1) into `out`, within the file.
    fn read_sample(&mut self, i: u32, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let &(offset, size) = (i as usize)
            .checked_sub(1)
            .and_then(|index| self.samples.get(index))
            .ok_or(FrameError::NoSuchFrame(i))?;
        let end = offset.checked_add(u64::from(size));
        if end.is_none_or(|end| end > self.len) {
            return Err(FrameError::BeyondEnd(i));
        }
        out.clear();
        out.resize(size as usize, 0);
        let read = |e| FrameError::Read {
            frame: i,
            source: e,
        };
        self.file.seek(SeekFrom::Start(offset)).map_err(read)?;
        self.file.read_exact(out).map_err(read)
    }
}

/// `duration / timescale` in seconds; 0 without a timescale.
fn ratio(duration: u64, timescale: u32) -> f64 {
    if timescale == 0 {
        0.0
    } else {
        duration as f64 / f64::from(timescale)
    }
}

/// Every sample's (offset, size) in `track`, from the sample-to-chunk, chunk offset and sample size tables of
/// a file of `len` bytes. Where each sample lies is checked when it is read.
fn sample_table(track: &mp4::Mp4Track, len: u64) -> Result<Vec<(u64, u32)>, FrameError> {
    let stbl = &track.trak.mdia.minf.stbl;
    let stsz = &stbl.stsz;
    let count = stsz.sample_count as usize;
    if stsz.sample_size == 0 && stsz.sample_sizes.len() < count {
        return Err(FrameError::Table("fewer sample sizes than samples"));
    }
    // One size for all: the list is not in the file, so its length must be bounded by the file.
    if u64::from(stsz.sample_count) * u64::from(stsz.sample_size) > len {
        return Err(FrameError::Table("more samples than the file holds"));
    }
    let size_of = |n: usize| match stsz.sample_size {
        0 => stsz.sample_sizes.get(n).copied(),
        all => Some(all),
    };
    let chunks: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(stco), _) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, Some(co64)) => co64.entries.clone(),
        (None, None) => return Err(FrameError::Table("no chunk offsets")),
    };
    let runs = &stbl.stsc.entries;
    let mut samples = Vec::with_capacity(count.min(chunks.len().saturating_mul(64)));
    for (k, run) in runs.iter().enumerate() {
        if samples.len() == count {
            break;
        }
        // Chunks are numbered from 1; a run lasts until the next one's first chunk.
        let first = run.first_chunk as usize;
        let end = match runs.get(k + 1) {
            Some(next) => next.first_chunk as usize,
            None => chunks.len() + 1,
        };
        if first == 0 || end <= first || end > chunks.len() + 1 {
            return Err(FrameError::Table("chunks out of order"));
        }
        for chunk in first..end {
            let mut offset = *chunks
                .get(chunk - 1)
                .ok_or(FrameError::Table("chunks out of order"))?;
            for _ in 0..run.samples_per_chunk {
                if samples.len() == count {
                    break;
                }
                let size = size_of(samples.len())
                    .ok_or(FrameError::Table("fewer sample sizes than samples"))?;
                samples.push((offset, size));
                offset = offset
                    .checked_add(u64::from(size))
                    .ok_or(FrameError::Table("a chunk runs past any file"))?;
            }
        }
    }
    if samples.len() < count {
        return Err(FrameError::Table(
            "the chunks hold fewer samples than listed",
        ));
    }
    Ok(samples)
}

/// A decoded picture: I420 planes, checked to hold `width × height`.
pub struct Frame<'a> {
    width: usize,
    height: usize,
    y: (&'a [u8], usize),
    u: (&'a [u8], usize),
    v: (&'a [u8], usize),
}

impl<'a> Frame<'a> {
    fn of(yuv: &'a openh264::decoder::DecodedYUV<'_>) -> Result<Frame<'a>, FrameError> {
        let (width, height) = yuv.dimensions();
        let (ys, us, vs) = yuv.strides();
        Frame::new(width, height, (yuv.y(), ys), (yuv.u(), us), (yuv.v(), vs))
    }

    /// A frame of planes `(bytes, stride)`; an error unless each holds its rows.
    fn new(
        width: usize,
        height: usize,
        y: (&'a [u8], usize),
        u: (&'a [u8], usize),
        v: (&'a [u8], usize),
    ) -> Result<Frame<'a>, FrameError> {
        let holds = |(plane, stride): (&[u8], usize), w: usize, h: usize| {
            stride >= w
                && h.checked_sub(1)
                    .and_then(|rows| stride.checked_mul(rows))
                    .and_then(|n| n.checked_add(w))
                    .is_some_and(|n| n <= plane.len())
        };
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        if width == 0
            || height == 0
            || !holds(y, width, height)
            || !holds(u, cw, ch)
            || !holds(v, cw, ch)
        {
            return Err(FrameError::BadPicture);
        }
        Ok(Frame {
            width,
            height,
            y,
            u,
            v,
        })
    }

    /// The picture's size.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Row `row` of the luma plane (`width` bytes; none past the last row).
    pub fn luma_row(&self, row: usize) -> &'a [u8] {
        let (plane, stride) = self.y;
        if row >= self.height {
            return &[];
        }
        let start = row * stride;
        plane.get(start..start + self.width).unwrap_or(&[])
    }

    /// The luma plane, tightly packed (`width × height` bytes).
    pub fn luma(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width * self.height);
        for row in 0..self.height {
            out.extend_from_slice(self.luma_row(row));
        }
        out
    }

    /// The picture as packed RGB, read as BT.709, limited range (what H.264 video is tagged with).
    pub fn to_rgb(&self) -> Vec<u8> {
        let ((y, ys), (u, us), (v, vs)) = (self.y, self.u, self.v);
        let mut rgb = Vec::with_capacity(self.width * self.height * 3);
        let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
        for row in 0..self.height {
            for col in 0..self.width {
                let luma = (f32::from(y[row * ys + col]) - 16.0) * 1.164_383;
                let cb = f32::from(u[(row / 2) * us + col / 2]) - 128.0;
                let cr = f32::from(v[(row / 2) * vs + col / 2]) - 128.0;
                rgb.push(clamp(luma + 1.792_741 * cr));
                rgb.push(clamp(luma - 0.213_249 * cb - 0.532_909 * cr));
                rgb.push(clamp(luma + 2.112_402 * cb));
            }
        }
        rgb
    }
}

#[cfg(test)]
mod tests;
