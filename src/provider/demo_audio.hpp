// The demo provider's audio, made offline: a small valid WAV file (16-bit mono PCM, 8 kHz, a short
// tone whose length follows the text, at most one second) that carries the spoken text in a RIFF
// LIST/INFO "ICMT" chunk, so that the demo transcription can read it back. Pure logic.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace parley::provider {

std::string demo_wav(std::string_view text);

// The ICMT text of a RIFF/WAVE file; nullopt when the bytes are not one or carry none.
std::optional<std::string> wav_comment(std::string_view bytes);

// The duration of a PCM WAV file in seconds; 0 when the bytes are not one.
double wav_seconds(std::string_view bytes);

}  // namespace parley::provider
