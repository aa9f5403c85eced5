#include "common/file_reader.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <string>

namespace virtscale {
namespace {

class FileReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/virtscale-file-reader-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(FileReaderTest, ReadsARegularFileWhole) {
  std::string error;
  auto text = ReadRegularFile(Write("a.yml", "a: 1\nb: 2\n"), 100, error);
  ASSERT_TRUE(text) << error;
  EXPECT_EQ(*text, "a: 1\nb: 2\n");
}

TEST_F(FileReaderTest, MissingFileNamesTheReason) {
  std::string error;
  EXPECT_FALSE(ReadRegularFile(dir_ + "/absent.yml", 100, error));
  EXPECT_EQ(error, "No such file or directory");
}

TEST_F(FileReaderTest, RefusesADirectory) {
  std::string error;
  EXPECT_FALSE(ReadRegularFile(dir_, 100, error));
  EXPECT_EQ(error, "not a regular file");
}

// A FIFO named as a config file must not block a reload waiting for a writer.
TEST_F(FileReaderTest, RefusesAFifoWithoutBlocking) {
  const std::string path = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  auto read = std::async(std::launch::async, [&] {
    std::string error;
    auto text = ReadRegularFile(path, 100, error);
    return text ? std::string("read: ") + *text : error;
  });
  ASSERT_EQ(read.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "ReadRegularFile blocked on a FIFO";
  EXPECT_EQ(read.get(), "not a regular file");
}

TEST_F(FileReaderTest, TooLargeIsAnErrorOnlyWhenStrict) {
  const std::string path = Write("big", std::string(11, 'x'));
  std::string error;
  EXPECT_FALSE(ReadRegularFile(path, 10, error));
  EXPECT_EQ(error, "larger than 10 bytes, the limit for this file");
  auto text = ReadRegularFile(path, 10, error, /*strict=*/false);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->size(), 11u);  // one byte over the limit tells the caller
  EXPECT_TRUE(ReadRegularFile(Write("exact", std::string(10, 'x')), 10, error));
}

}  // namespace
}  // namespace virtscale
