// The image-folder source: DIR/<class>/<image>.png|.jpg|.jpeg, classes labelled by their sorted folder
// names, images in sorted path order within a class (subfolders included), decoded (libpng, libjpeg) to rows
// (C, H, W) of uint8.
#pragma once

#include "mimic/io/array_source.hpp"

namespace mimic::io {

/// Opens a folder of class subfolders. Every image's header is read at once: images of another size or
/// mode (grey, grey+alpha, RGB, RGBA; a palette PNG is RGB, or RGBA with a tRNS chunk) than the first,
/// 16-bit PNGs, CMYK JPEGs and empty class folders are refused naming the file. Files of other extensions,
/// files at DIR's top level and hidden entries (.DS_Store, ._*) are ignored.
std::unique_ptr<ArraySource> open_image_folder(const std::string& dir);

} // namespace mimic::io
