"""What people see: tables, progress, pictures, the HTML page, JUnit, and the objects that
read a finished run's folder."""
