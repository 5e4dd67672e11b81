// The image-folder source: DIR/<class>/<image>.png|.jpg|.jpeg, classes labelled by their sorted folder
// names, images in sorted order within a class, decoded (libpng, libjpeg) to rows (C, H, W) of uint8.
#pragma once

#include "mimic/io/array_source.hpp"

namespace mimic::io {

/// Opens a folder of class subfolders. Every image's header is read at once: images of another size or
/// channel count than the first, 16-bit PNGs, CMYK JPEGs and empty class folders are refused naming the
/// file. Files of other extensions and hidden entries are ignored.
std::unique_ptr<ArraySource> open_image_folder(const std::string& dir);

} // namespace mimic::io
