# Install rules for what is not a binary (man pages, example configuration, systemd units)
# and the CPack .deb. The binaries' own install() lines live beside their targets (cached/,
# milter/, ctl/, tlsmap/). Included from the root CMakeLists.txt.
#
#   cmake --install build/default --prefix /usr      # as root, or with DESTDIR=...
#   cd build/default && cpack -G DEB                  # -> mta-sts_<version>_<arch>.deb

# /etc is not under the prefix: the programs read /etc/mta-sts/mta-sts.conf by default
# whatever the prefix, so the example configuration goes where they look.
set(MTASTS_SYSCONFDIR "/etc" CACHE PATH "Where mta-sts/mta-sts.conf is installed")
set(MTASTS_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "systemd unit directory (relative: under the prefix)")

# `make install` and cpack install what is built and do not build `all` first: the e2e test
# runs cpack from inside ctest, where a rebuild of the whole tree has no place (build first).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY TRUE)

# ---- man pages: gzipped, as Debian ships them ---------------------------------------------
set(_mtasts_man_pages mta-sts-ctl.1 mta-sts.conf.5 mta-sts-milter.8 mta-sts-cached.8 mta-sts-tlsmap.8 mta-sts-reportd.8)
set(_mtasts_man_gz "")
foreach(_page ${_mtasts_man_pages})
  set(_src ${PROJECT_SOURCE_DIR}/man/${_page})
  set(_gz ${PROJECT_BINARY_DIR}/man/${_page}.gz)
  add_custom_command(OUTPUT ${_gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND sh -c "gzip -9n -c '${_src}' > '${_gz}'"
    DEPENDS ${_src} VERBATIM)
  list(APPEND _mtasts_man_gz ${_gz})
  string(REGEX MATCH "[0-9]$" _section ${_page})
  install(FILES ${_gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_section} COMPONENT doc)
endforeach()
add_custom_target(mtasts_man ALL DEPENDS ${_mtasts_man_gz})

# ---- example configuration --------------------------------------------------------------
install(FILES
    ${PROJECT_SOURCE_DIR}/etc/mta-sts.conf
    ${PROJECT_SOURCE_DIR}/etc/postfix-main.cf
    ${PROJECT_SOURCE_DIR}/etc/sendmail.mc
    ${PROJECT_SOURCE_DIR}/etc/sendmail-tlsmap.mc
    ${PROJECT_SOURCE_DIR}/etc/redis-acl.conf
    ${PROJECT_SOURCE_DIR}/etc/warm-list.example
    ${PROJECT_SOURCE_DIR}/etc/mta-sts-milter.service
    ${PROJECT_SOURCE_DIR}/etc/mta-sts-cached.service
    ${PROJECT_SOURCE_DIR}/etc/mta-sts-tlsmap.service
    ${PROJECT_SOURCE_DIR}/etc/mta-sts-reportd.service
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT doc)
# Prometheus: a scrape example and the alert rules (their tests are in tests/prometheus/).
install(FILES
    ${PROJECT_SOURCE_DIR}/etc/prometheus/prometheus.yml
    ${PROJECT_SOURCE_DIR}/etc/prometheus/mta-sts.rules.yml
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/prometheus COMPONENT doc)

# The live configuration file (a conffile in the .deb). It may hold a Redis password: not
# world-readable; the package's postinst gives group mta-sts read access.
install(FILES ${PROJECT_SOURCE_DIR}/etc/mta-sts.conf
  DESTINATION ${MTASTS_SYSCONFDIR}/mta-sts
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)

# ---- systemd units, pointing at the installed daemons -------------------------------------
# The path is fixed at install time, not configure time: CPack installs with its own prefix
# (/usr), whatever CMAKE_INSTALL_PREFIX the build was configured with.
foreach(_unit mta-sts-milter.service mta-sts-cached.service mta-sts-tlsmap.service mta-sts-reportd.service)
  install(CODE "
    file(READ \"${PROJECT_SOURCE_DIR}/etc/${_unit}\" _text)
    string(REPLACE \"/usr/sbin/\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SBINDIR}/\" _text \"\${_text}\")
    set(_dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${MTASTS_SYSTEMD_UNITDIR}\")
    if(IS_ABSOLUTE \"${MTASTS_SYSTEMD_UNITDIR}\")
      set(_dir \"\$ENV{DESTDIR}${MTASTS_SYSTEMD_UNITDIR}\")
    endif()
    message(STATUS \"Installing: \${_dir}/${_unit}\")
    file(MAKE_DIRECTORY \"\${_dir}\")
    file(WRITE \"\${_dir}/${_unit}\" \"\${_text}\")
  ")
endforeach()

# ---- Debian package documentation and run-time directory -----------------------------------
# copyright and changelog where Debian policy wants them; the changelog gzipped.
set(_deb_dir ${PROJECT_BINARY_DIR}/deb)
configure_file(${CMAKE_CURRENT_LIST_DIR}/deb/copyright.in ${_deb_dir}/copyright @ONLY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/deb/changelog.in ${_deb_dir}/changelog @ONLY)
add_custom_command(OUTPUT ${_deb_dir}/changelog.gz
  COMMAND sh -c "gzip -9n -c '${_deb_dir}/changelog' > '${_deb_dir}/changelog.gz'"
  DEPENDS ${_deb_dir}/changelog VERBATIM)
add_custom_target(mtasts_changelog ALL DEPENDS ${_deb_dir}/changelog.gz)
install(FILES ${_deb_dir}/copyright ${_deb_dir}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT doc)
# /run/mta-sts: systemd-tmpfiles makes it at boot (the units also have RuntimeDirectory=);
# the package's postinst makes it at install time, so that a host without systemd has it too.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/deb/tmpfiles.conf DESTINATION lib/tmpfiles.d RENAME mta-sts.conf)

# ---- CPack: one Debian package ------------------------------------------------------------
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "mta-sts")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "mta-sts project")
set(CPACK_PACKAGE_CONTACT "mta-sts maintainers <maintainers@users.noreply.r-seed-eafaf78a.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "sending-side MTA-STS (RFC 8461) for Postfix and Sendmail fleets")
# Keep it true: it says what the package does today. Lines of at most 80 characters.
set(CPACK_PACKAGE_DESCRIPTION
"A TLS policy server (socketmap) that makes Postfix and Sendmail enforce
MTA-STS policies at delivery; a fetcher daemon that discovers and refreshes
the policies into a Redis cache shared by the fleet; a milter that tags each
message with its recipient domains' policies; and mta-sts-ctl, a tool to lint
policies, query domains and inspect the cache; and mta-sts-reportd, which
collects the fleet's TLS outcomes from the MTAs' logs and sends the daily
SMTP TLS reports (RFC 8460) once for the whole fleet.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEBIAN_PACKAGE_SECTION "mail")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# The shared libraries' packages (with their minimum versions) come from dpkg-shlibdeps, run
# on the installed binaries; adduser is for postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server, postfix | sendmail-bin")
configure_file(${CMAKE_CURRENT_LIST_DIR}/deb/conffiles.in ${_deb_dir}/conffiles @ONLY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/deb/postinst ${_deb_dir}/postinst COPYONLY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/deb/prerm ${_deb_dir}/prerm COPYONLY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/deb/postrm ${_deb_dir}/postrm COPYONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_deb_dir}/conffiles ${_deb_dir}/postinst ${_deb_dir}/prerm ${_deb_dir}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
