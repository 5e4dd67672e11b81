// ImageFolderSource: directory listing, header scan (libpng's simplified API, jpeg_read_header), and each
// row's image decoded by libpng's simplified API or libjpeg, transposed from H x W x C to C x H x W.
#include "mimic/io/sources/image_folder_source.hpp"

#include "mimic/core/error.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <cstdio>
#include <jpeglib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <cstring>

namespace mimic::io {

namespace {
struct Shape {
    int c = 0, h = 0, w = 0;
};

struct JpegError {
    jpeg_error_mgr mgr;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
    auto* e = reinterpret_cast<JpegError*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, e->message);
    std::longjmp(e->jump, 1);
}

/// Warnings (a truncated or corrupt stream that libjpeg would fill with grey) are errors too.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_error_exit(cinfo);
}

/// Reads a JPEG's header (pixels = nullptr) or decodes it into pixels (H x W x C). Returns "" or the
/// libjpeg message of a failure.
std::string jpeg(const std::string& path, Shape& s, unsigned char* pixels) {
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    if (!fp) return "cannot open";
    jpeg_decompress_struct cinfo;
    JpegError err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit;
    err.mgr.emit_message = jpeg_emit_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        std::fclose(fp);
        return err.message;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, fp);
    jpeg_read_header(&cinfo, TRUE);
    s = {cinfo.num_components, int(cinfo.image_height), int(cinfo.image_width)};
    if (pixels && (s.c == 1 || s.c == 3)) {
        cinfo.out_color_space = s.c == 1 ? JCS_GRAYSCALE : JCS_RGB;
        jpeg_start_decompress(&cinfo);
        while (cinfo.output_scanline < cinfo.output_height) {
            JSAMPROW row = pixels + size_t(cinfo.output_scanline) * size_t(s.w * s.c);
            jpeg_read_scanlines(&cinfo, &row, 1);
        }
        jpeg_finish_decompress(&cinfo);
    }
    jpeg_destroy_decompress(&cinfo);
    std::fclose(fp);
    return "";
}

/// A PNG's shape as libpng's simplified API reads it: channels are grey or colour (palettes are colour)
/// plus alpha where the file has an alpha channel or a tRNS chunk; 16-bit samples are refused.
Shape png_header(const std::string& path) {
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path.c_str()))
        fail(path, ": cannot read the PNG header (", img.message, ")");
    const Shape s{int(PNG_IMAGE_SAMPLE_CHANNELS(img.format)), int(img.height), int(img.width)};
    const bool wide = img.format & PNG_FORMAT_FLAG_LINEAR;
    png_image_free(&img);
    if (wide) fail(path, ": 16-bit PNG samples are not supported (save 8-bit images)");
    return s;
}

/// Decodes a PNG of shape s (from png_header) into pixels (H x W x s.c).
void png_decode(const std::string& path, const Shape& s, unsigned char* pixels) {
    png_image img;
    std::memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path.c_str()))
        fail(path, ": cannot decode PNG (", img.message, ")");
    static const png_uint_32 formats[] = {0, PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB, PNG_FORMAT_RGBA};
    img.format = formats[s.c];
    if (!png_image_finish_read(&img, nullptr, pixels, 0, nullptr)) {
        png_image_free(&img);
        fail(path, ": cannot decode PNG (", img.message, ")");
    }
}

/// The mode of c channels, for messages.
const char* mode_name(int c) {
    static const char* names[] = {"", "grey", "grey+alpha", "RGB", "RGBA"};
    return c >= 1 && c <= 4 ? names[c] : "?";
}

enum class Kind { png, jpeg, other };

Kind kind_of(const std::string& name) {
    std::string ext = name.substr(name.rfind('.') == std::string::npos ? name.size() : name.rfind('.'));
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    if (ext == ".png") return Kind::png;
    if (ext == ".jpg" || ext == ".jpeg") return Kind::jpeg;
    return Kind::other;
}

/// Entries of a directory (hidden ones, such as .DS_Store and ._* files, left out), sorted by name.
std::vector<std::string> list_dir(const std::string& dir) {
    DIR* d = opendir(dir.c_str());
    if (!d) fail(dir, ": cannot list the directory (", std::strerror(errno), ")");
    std::vector<std::string> names;
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

bool is_dir(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

class ImageFolderSource : public ArraySource {
public:
    ImageFolderSource(const std::string& dir, std::vector<std::string> classes,
                      std::vector<std::string> files, std::vector<std::int64_t> labels, Shape s)
        : ArraySource(dir, {std::int64_t(files.size()), s.c, s.h, s.w}, Elem::u8),
          classes_(std::move(classes)), files_(std::move(files)), labels_(std::move(labels)), shape_(s) {}

    void read(std::int64_t begin, std::int64_t count, void* buf) const override {
        const std::int64_t hw = std::int64_t(shape_.h) * shape_.w, d = hw * shape_.c;
        std::vector<unsigned char> hwc(static_cast<size_t>(d));
        for (std::int64_t i = 0; i < count; ++i) {
            decode(files_[size_t(begin + i)], hwc.data());
            auto* out = static_cast<unsigned char*>(buf) + i * d;
            for (std::int64_t p = 0; p < hw; ++p)
                for (int c = 0; c < shape_.c; ++c)
                    out[c * hw + p] = hwc[size_t(p * shape_.c + c)];
        }
    }
    std::string native_layout() const override { return "nchw"; }
    bool has_labels() const override { return true; }
    void read_labels(std::int64_t begin, std::int64_t count, std::int64_t* y) const override {
        std::copy_n(labels_.begin() + begin, count, y);
    }
    std::vector<std::string> class_names() const override { return classes_; }

private:
    void decode(const std::string& path, unsigned char* hwc) const {
        Shape s = shape_;
        if (kind_of(path) == Kind::png) return png_decode(path, s, hwc);
        const std::string msg = jpeg(path, s, hwc);
        if (!msg.empty()) fail(path, ": cannot decode JPEG (", msg, ")");
    }
    std::vector<std::string> classes_, files_;
    std::vector<std::int64_t> labels_;
    Shape shape_;
};

/// The shape in an image's header; a failure names the file.
Shape header_of(const std::string& path) {
    if (kind_of(path) == Kind::png) return png_header(path);
    Shape s;
    const std::string msg = jpeg(path, s, nullptr);
    if (!msg.empty()) fail(path, ": cannot read the JPEG header (", msg, ")");
    if (s.c != 1 && s.c != 3) fail(path, ": JPEG with ", s.c, " components (CMYK?); save it as RGB or grey");
    return s;
}

/// Appends the PNG and JPEG files under dir to files, checking each header against the first image's shape:
/// dir's own files in sorted name order, then each subfolder's likewise, in sorted order.
void collect(const std::string& dir, int depth, std::vector<std::string>& files, Shape& first) {
    if (depth > 16) fail(dir, ": folders nested more than 16 deep (a symbolic link loop?)");
    std::vector<std::string> subs;
    for (const auto& f : list_dir(dir)) {
        const std::string path = dir + "/" + f;
        if (is_dir(path)) {
            subs.push_back(path);
            continue;
        }
        if (kind_of(f) == Kind::other) continue;
        const Shape s = header_of(path);
        if (files.empty()) first = s;
        if (s.c != first.c || s.h != first.h || s.w != first.w)
            fail(path, ": image is ", s.c, "x", s.h, "x", s.w, " (CxHxW) ", mode_name(s.c), " but ",
                 files.front(), " is ", first.c, "x", first.h, "x", first.w, " ", mode_name(first.c),
                 "; every image must have the same size and mode (a palette PNG is RGB, RGBA with "
                 "transparency; convert them to one, e.g. with Pillow's Image.convert('RGB'))");
        files.push_back(path);
    }
    for (const auto& sub : subs)
        collect(sub, depth + 1, files, first);
}
} // namespace

std::unique_ptr<ArraySource> open_image_folder(const std::string& dir) {
    std::vector<std::string> classes, files;
    std::vector<std::int64_t> labels;
    Shape first;
    for (const auto& cls : list_dir(dir)) {
        const std::string sub = dir + "/" + cls;
        if (!is_dir(sub)) continue;
        if (cls.find('\n') != std::string::npos) fail(sub, ": a class folder name may not hold a newline");
        const std::size_t before = files.size();
        collect(sub, 0, files, first);
        if (files.size() == before) fail(sub, ": class folder holds no PNG or JPEG image");
        labels.resize(files.size(), std::int64_t(classes.size()));
        classes.push_back(cls);
    }
    if (classes.empty()) fail(dir, ": holds no class subfolders (expected DIR/<class>/<image>.png)");
    return std::make_unique<ImageFolderSource>(dir, std::move(classes), std::move(files), std::move(labels),
                                               first);
}

} // namespace mimic::io
